<?php
require __DIR__ . '/common.php';

// The same sign-in with session_regenerate_id(true): a new id at login, the old one destroyed.
handle_login(true);
