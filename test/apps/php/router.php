<?php
// Router for PHP's built-in server, for sessiongate's integration tests:
//   php -d session.save_path=DIR -S 127.0.0.1:PORT -t test/apps/php test/apps/php/router.php
// Serves the app's own .php pages (login.php, account.php, logout.php) and
// answers 404 for anything else, so no other file in this folder is served.
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/' || $path === '') {
    header('Location: /account.php', true, 302);
    return true;
}
if (in_array($path, ['/login.php', '/account.php', '/logout.php'], true)) {
    return false; // let the built-in server run the script itself
}
http_response_code(404);
header('Content-Type: text/plain');
echo "not found\n";
return true;
