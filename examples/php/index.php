<?php
// Widemesh example: served by PHP's built-in server (php -S), which sends every path that is not
// a file here.
header('Content-Type: text/plain');
$path = parse_url($_SERVER['REQUEST_URI'], PHP_URL_PATH);
if ($path === '/healthz') {
    echo "ok\n";
} elseif ($path === '/') {
    echo "hello from php\n";
} else {
    http_response_code(404);
    echo "not found\n";
}
