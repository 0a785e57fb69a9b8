<?php
// Router for PHP's built-in server (test/support/php-legacy.ts):
//   php -d session.save_path=DIR -S 127.0.0.1:PORT -t test/apps/php-legacy test/apps/php-legacy/router.php
// Serves the app's own pages and answers 404 for anything else (common.php is never served).
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if (in_array($path, ['/login.php', '/login-regenerate.php', '/account.php', '/logout.php'], true)) {
    return false;
}
http_response_code(404);
header('Content-Type: text/plain');
echo "not found\n";
return true;
