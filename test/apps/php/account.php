<?php
require __DIR__ . '/common.php';

session_start();
if (!isset($_SESSION['user'])) {
    redirect_to('/login.php');
}
// Rotate the id on every authenticated response; `true` deletes the old
// session, so the previous PHPSESSID stops working at once.
session_regenerate_id(true);
$_SESSION['views'] = ($_SESSION['views'] ?? 0) + 1;
header('Content-Type: text/plain; charset=utf-8');
echo 'hello ' . $_SESSION['user'];
