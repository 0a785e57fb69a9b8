<?php
// A front-controller app for sessiongate's tests: this one script serves every
// request, as many legacy PHP apps do. Run as the built-in server's router:
//   PHP_FRONT_STATE=DIR php -d session.save_path=DIR/sessions \
//     -S 127.0.0.1:PORT -t test/apps/php-front test/apps/php-front/index.php
// Paths: /, /index.php and /index.php/<anything> (as DirectoryIndex and
// PATH_INFO would give) run the controller; /assets/app.css is served from
// here too; anything else is 404. The controller dispatches on `action` in the
// query first, then on `op` in a POST form. Repeated fields follow PHP: the
// last one wins.
require __DIR__ . '/lib.php';

const LOGIN_PAGE = '/index.php?action=login';
const ACCOUNT_PAGE = '/index.php?action=account';

function login_form(string $error = ''): never
{
    $err = $error === '' ? '' : '<p class="error">' . htmlspecialchars($error) . '</p>';
    text(
        200,
        '<!doctype html><title>login</title><link rel="stylesheet" href="/assets/app.css">' . $err
            . '<form method="post" action="/index.php?action=login"><input name="username">'
            . ' <input name="password" type="password">'
            . ' <label><input type="checkbox" name="remember" value="1"> remember me</label>'
            . ' <button>log in</button></form>',
        'text/html',
    );
}

function do_login(): never
{
    $username = field($_POST, 'username') ?? '';
    if (!valid_login($username, field($_POST, 'password') ?? '')) {
        // The session (and so its PHPSESSID cookie) exists whatever the outcome.
        $_SESSION['login_failures'] = ($_SESSION['login_failures'] ?? 0) + 1;
        login_form('bad credentials');
    }
    session_regenerate_id(true); // new id on privilege change, the old one destroyed
    $_SESSION = ['user' => $username, 'notes' => []];
    if (field($_POST, 'remember') === '1') {
        $old = presented_remember_token();
        if ($old !== null) {
            remember_take($old);
        }
        remember_issue($username);
    }
    redirect_to(ACCOUNT_PAGE);
}

function account(): never
{
    if (isset($_SESSION['user'])) {
        text(200, 'account of ' . $_SESSION['user']);
    }
    $token = presented_remember_token();
    if ($token !== null) {
        $user = remember_take($token);
        if ($user !== null) {
            // Logged in again from the cookie: a new session id and a new
            // remember-me value; the one presented is gone from the store.
            session_regenerate_id(true);
            $_SESSION = ['user' => $user, 'notes' => [], 'remembered' => true];
            remember_issue($user);
            text(200, 'account of ' . $user);
        }
        clear_remember_cookie();
    }
    redirect_to(LOGIN_PAGE);
}

function notes(): never
{
    if (!isset($_SESSION['user'])) {
        redirect_to(LOGIN_PAGE);
    }
    text(200, json_encode($_SESSION['notes'] ?? []), 'application/json');
}

function save_note(): never
{
    if (!isset($_SESSION['user'])) {
        redirect_to(LOGIN_PAGE);
    }
    $_SESSION['notes'][] = field($_POST, 'text') ?? '';
    text(200, 'saved');
}

function logout(): never
{
    $token = presented_remember_token();
    if ($token !== null) {
        remember_take($token);
    }
    $_SESSION = [];
    session_destroy();
    clear_session_cookie();
    clear_remember_cookie();
    redirect_to(LOGIN_PAGE);
}

function method_not_allowed(string $allow): never
{
    header("Allow: $allow");
    text(405, "method not allowed\n");
}

$path = explode('?', $_SERVER['REQUEST_URI'], 2)[0];
$controller = $path === '/' || $path === '/index.php' || str_starts_with($path, '/index.php/');
$method = $_SERVER['REQUEST_METHOD'];
$action = field($_GET, 'action');

// The test hook: how many requests the app has seen, not counting these.
if ($controller && $action === '_count') {
    text(200, (string) request_count());
}
count_request();

if ($path === '/assets/app.css') {
    session_start(); // as many legacy apps do on every request
    header('Content-Type: text/css; charset=utf-8');
    readfile(__DIR__ . '/assets/app.css');
    exit;
}
if (!$controller) {
    text(404, "not found\n");
}

session_start();
if ($action !== null) {
    match ($action) {
        'login' => match ($method) {
            'GET' => login_form(),
            'POST' => do_login(),
            default => method_not_allowed('GET, POST'),
        },
        'account' => $method === 'GET' ? account() : method_not_allowed('GET'),
        'notes' => $method === 'GET' ? notes() : method_not_allowed('GET'),
        'logout' => in_array($method, ['GET', 'POST'], true) ? logout() : method_not_allowed('GET, POST'),
        default => text(404, "unknown action\n"),
    };
}
if ($method !== 'POST') {
    redirect_to(ACCOUNT_PAGE);
}
match (field($_POST, 'op')) {
    'login' => do_login(),
    'note' => save_note(),
    default => text(400, "unknown op\n"),
};
