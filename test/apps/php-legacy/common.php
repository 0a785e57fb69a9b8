<?php
// A legacy PHP app as many still run: native file sessions with PHP's default cookie (no HttpOnly, no
// Secure, no SameSite) and a lenient session module (use_strict_mode off: an id the browser brings is
// adopted). The test launcher points session.save_path at a temporary directory.
ini_set('session.use_strict_mode', '0');
ini_set('session.use_only_cookies', '1');
ini_set('session.cookie_httponly', '0');
ini_set('session.cookie_secure', '0');
ini_set('session.cookie_samesite', '');
session_name('PHPSESSID');

const USERS = ['alice' => 'pw-alice', 'bob' => 'pw-bob'];

function redirect_to(string $location): void
{
    header('Location: ' . $location, true, 302);
    exit;
}

/**
 * POST login: the credentials checked against USERS; on success the session is marked signed in,
 * with a new id only when $regenerate (the fix for session fixation), then 302 /account.php.
 */
function handle_login(bool $regenerate): void
{
    if ($_SERVER['REQUEST_METHOD'] !== 'POST') {
        http_response_code(405);
        header('Allow: POST');
        exit;
    }
    session_start();
    $username = (string) ($_POST['username'] ?? '');
    $password = (string) ($_POST['password'] ?? '');
    if (!isset(USERS[$username]) || !hash_equals(USERS[$username], $password)) {
        redirect_to('/login.php?error=1');
    }
    if ($regenerate) {
        session_regenerate_id(true);
    }
    $_SESSION['user'] = $username;
    redirect_to('/account.php');
}
