<?php
require __DIR__ . '/common.php';

if ($_SERVER['REQUEST_METHOD'] === 'GET') {
    header('Content-Type: text/html; charset=utf-8');
    $error = isset($_GET['error']) ? '<p>bad credentials</p>' : '';
    echo "<!doctype html><title>login</title>$error"
        . '<form method="post" action="/login.php"><input name="username">'
        . ' <input name="password" type="password"> <button>log in</button></form>';
    exit;
}
if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
    http_response_code(405);
    header('Allow: GET, POST');
    exit;
}

// The session is started whatever the outcome, so a failed login also
// gets a PHPSESSID cookie.
session_start();
$username = (string) ($_POST['username'] ?? '');
$password = (string) ($_POST['password'] ?? '');
if (isset(USERS[$username]) && hash_equals(USERS[$username], $password)) {
    session_regenerate_id(true); // new id on privilege change, old one destroyed
    $_SESSION = ['user' => $username, 'views' => 0];
    redirect_to('/account.php');
}
$_SESSION['login_failures'] = ($_SESSION['login_failures'] ?? 0) + 1;
redirect_to('/login.php?error=1');
