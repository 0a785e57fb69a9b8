<?php
// Shared by the pages: native PHP sessions (files in session.save_path, which
// the test launcher points at a temporary directory) and the test users.
ini_set('session.use_strict_mode', '1'); // never adopt an unknown/destroyed id
ini_set('session.use_only_cookies', '1');
ini_set('session.cookie_httponly', '1');
ini_set('session.cookie_samesite', 'Lax');
session_name('PHPSESSID');

const USERS = ['alice' => 'pw-alice', 'bob' => 'pw-bob'];

function redirect_to(string $location): void
{
    header('Location: ' . $location, true, 302);
    exit;
}
