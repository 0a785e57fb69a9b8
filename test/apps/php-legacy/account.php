<?php
require __DIR__ . '/common.php';

session_start();
if (!isset($_SESSION['user'])) {
    redirect_to('/login.php');
}
header('Content-Type: text/html; charset=utf-8');
echo '<!doctype html><title>account</title><p id="user">hello ' . htmlspecialchars($_SESSION['user']) . '</p>';
