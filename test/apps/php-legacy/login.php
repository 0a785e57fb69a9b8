<?php
require __DIR__ . '/common.php';

// GET: the login page starts the session (as apps with a CSRF token in it do), so the browser holds
// a PHPSESSID before it signs in. POST: signs in WITHOUT session_regenerate_id(): the pre-login id
// becomes the signed-in session's (session fixation), and PHP sends no Set-Cookie, the id unchanged.
if ($_SERVER['REQUEST_METHOD'] === 'GET') {
    session_start();
    $_SESSION['csrf'] = $_SESSION['csrf'] ?? bin2hex(random_bytes(8));
    header('Content-Type: text/html; charset=utf-8');
    $error = isset($_GET['error']) ? '<p>bad credentials</p>' : '';
    echo "<!doctype html><title>login</title>$error"
        . '<form method="post" action="/login.php"><input name="username">'
        . ' <input name="password" type="password"> <button>log in</button></form>';
    exit;
}
handle_login(false);
