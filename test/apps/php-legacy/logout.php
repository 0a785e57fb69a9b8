<?php
require __DIR__ . '/common.php';

if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    header('Allow: POST');
    exit;
}
session_start();
$_SESSION = [];
setcookie(session_name(), '', time() - 42000, '/');
session_destroy();
redirect_to('/login.php');
