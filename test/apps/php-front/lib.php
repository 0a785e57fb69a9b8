<?php
// Shared by the front controller: state of one run (PHP_FRONT_STATE, a
// temporary directory the launcher creates), native file sessions, the
// request counter and the remember-me store.
ini_set('session.use_strict_mode', '1'); // never adopt an unknown/destroyed id
ini_set('session.use_only_cookies', '1');
ini_set('session.cookie_httponly', '1');
ini_set('session.cookie_samesite', 'Lax');
session_name('PHPSESSID');

const PASSWORD = 'demo';
const REMEMBER_COOKIE = 'REMEMBERME';
const REMEMBER_DAYS = 30;

function state_dir(): string
{
    $dir = getenv('PHP_FRONT_STATE');
    if (!is_string($dir) || $dir === '' || !is_dir($dir)) {
        // Loud, so a launcher that forgot the variable fails its first request.
        http_response_code(500);
        header('Content-Type: text/plain; charset=utf-8');
        echo "PHP_FRONT_STATE is not a directory\n";
        exit;
    }
    return $dir;
}

/** Any user exists; the password is always PASSWORD. */
function valid_login(string $username, string $password): bool
{
    return preg_match('/^[A-Za-z0-9._@-]{1,64}$/', $username) === 1 && hash_equals(PASSWORD, $password);
}

/** A string field of $_GET / $_POST, or null (absent, or an array such as `op[]=`). */
function field(array $from, string $name): ?string
{
    $v = $from[$name] ?? null;
    return is_string($v) ? $v : null;
}

function redirect_to(string $location): never
{
    header('Location: ' . $location, true, 302);
    exit;
}

function text(int $status, string $body, string $type = 'text/plain'): never
{
    http_response_code($status);
    header("Content-Type: $type; charset=utf-8");
    echo $body;
    exit;
}

// ---------------------------------------------------------------------------
// Request counter: a file under an exclusive lock, since the built-in server
// runs several workers.

function with_locked_file(string $path, callable $fn): mixed
{
    $fh = fopen($path, 'c+');
    if ($fh === false || !flock($fh, LOCK_EX)) {
        throw new RuntimeException("cannot lock $path");
    }
    try {
        return $fn($fh);
    } finally {
        flock($fh, LOCK_UN);
        fclose($fh);
    }
}

function read_all($fh): string
{
    rewind($fh);
    return stream_get_contents($fh) ?: '';
}

function write_all($fh, string $data): void
{
    rewind($fh);
    ftruncate($fh, 0);
    fwrite($fh, $data);
    fflush($fh);
}

function count_request(): void
{
    with_locked_file(state_dir() . '/count', function ($fh): void {
        write_all($fh, (string) ((int) read_all($fh) + 1));
    });
}

function request_count(): int
{
    return with_locked_file(state_dir() . '/count', fn ($fh): int => (int) read_all($fh));
}

// ---------------------------------------------------------------------------
// Remember-me store: remember.json maps sha256(token) -> {user, expires}, so
// the file never holds a usable token. Read-modify-write under one lock.

/** @param callable(array): array{0: array, 1: mixed} $fn gets the map, returns [new map, result] */
function with_remember_store(callable $fn): mixed
{
    return with_locked_file(state_dir() . '/remember.json', function ($fh) use ($fn): mixed {
        $map = json_decode(read_all($fh) ?: '{}', true);
        [$next, $result] = $fn(is_array($map) ? $map : []);
        write_all($fh, json_encode($next, JSON_FORCE_OBJECT));
        return $result;
    });
}

function remember_issue(string $user): string
{
    $token = bin2hex(random_bytes(24));
    with_remember_store(function (array $map) use ($token, $user): array {
        $map[hash('sha256', $token)] = ['user' => $user, 'expires' => time() + REMEMBER_DAYS * 86400];
        return [$map, null];
    });
    setcookie(REMEMBER_COOKIE, $token, [
        'expires' => time() + REMEMBER_DAYS * 86400,
        'path' => '/',
        'httponly' => true,
        'samesite' => 'Lax',
    ]);
    return $token;
}

/** Deletes the token from the store and returns its user if it was valid: each value works once. */
function remember_take(string $token): ?string
{
    return with_remember_store(function (array $map) use ($token): array {
        $key = hash('sha256', $token);
        $entry = $map[$key] ?? null;
        unset($map[$key]);
        $user = is_array($entry) && ($entry['expires'] ?? 0) > time() ? (string) $entry['user'] : null;
        return [$map, $user];
    });
}

function presented_remember_token(): ?string
{
    $v = $_COOKIE[REMEMBER_COOKIE] ?? null;
    return is_string($v) && $v !== '' ? $v : null;
}

function clear_remember_cookie(): void
{
    setcookie(REMEMBER_COOKIE, '', ['expires' => 1, 'path' => '/', 'httponly' => true, 'samesite' => 'Lax']);
}

function clear_session_cookie(): void
{
    $p = session_get_cookie_params();
    setcookie(session_name(), '', [
        'expires' => 1,
        'path' => $p['path'],
        'domain' => $p['domain'],
        'secure' => $p['secure'],
        'httponly' => $p['httponly'],
        'samesite' => $p['samesite'],
    ]);
}
