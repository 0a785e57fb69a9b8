"""Minimal Django app for sessiongate's integration tests.

Run: /usr/bin/python3 test/apps/django/app.py PORT [HOST]

Uses Django's own machinery: signed-cookie sessions
(django.contrib.sessions.backends.signed_cookies), django.contrib.auth's
authenticate/login/logout, and Django's development WSGI server (threaded).
The user table lives in an in-memory SQLite database that is migrated and
seeded (alice/pw-alice, bob/pw-bob) at startup.
"""

import sys

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="sessiongate-test-django-secret-key-not-for-production",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies",
    SESSION_COOKIE_NAME="sessionid",
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            # A shared-cache in-memory database, so that the server's worker
            # threads all see the tables created by `migrate` on the main
            # thread. Django never closes an in-memory SQLite connection, so
            # the main thread's connection keeps it alive for the process.
            "NAME": "file:sessiongate_django?mode=memory&cache=shared",
        }
    },
    # A fast hasher: this is a throwaway test app and the default PBKDF2 would
    # cost ~0.3 s per login and per seeded user.
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.contrib.auth import authenticate, login, logout  # noqa: E402
from django.contrib.auth.models import User, update_last_login  # noqa: E402
from django.contrib.auth.signals import user_logged_in  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import run  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse, JsonResponse  # noqa: E402
from django.shortcuts import redirect  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402
from django.views.decorators.http import require_GET, require_http_methods, require_POST  # noqa: E402

# Logging in normally writes users.last_login. SQLite's shared-cache mode
# fails concurrent writers at once ("table is locked") rather than waiting, so
# keep logins read-only on the database; sessions themselves are cookies.
user_logged_in.disconnect(update_last_login, dispatch_uid="update_last_login")

LOGIN_FORM = """<!doctype html>
<title>login</title>
%s
<form method="post" action="/login">
  <input name="username"> <input name="password" type="password">
  <button>log in</button>
</form>
"""


@csrf_exempt
@require_http_methods(["GET", "POST"])
def login_view(request):
    if request.method == "GET":
        error = "<p>bad credentials</p>" if request.GET.get("error") else ""
        return HttpResponse(LOGIN_FORM % error)
    user = authenticate(
        request,
        username=request.POST.get("username", ""),
        password=request.POST.get("password", ""),
    )
    if user is None:
        # Like many apps: remember failures in the session, so a failed login
        # also sends a (fresh) session cookie.
        request.session["login_failures"] = request.session.get("login_failures", 0) + 1
        return redirect("/login?error=1")
    login(request, user)
    return redirect("/account")


@require_GET
def account_view(request):
    if not request.user.is_authenticated:
        return redirect("/login")
    # Touch the session on every authenticated request: the signed cookie is
    # re-issued with a new value each time, while older values stay valid.
    request.session["views"] = request.session.get("views", 0) + 1
    return HttpResponse("hello %s" % request.user.username, content_type="text/plain")


@csrf_exempt
@require_POST
def logout_view(request):
    logout(request)
    return redirect("/login")


@require_GET
def me_view(request):
    if not request.user.is_authenticated:
        return JsonResponse({"authenticated": False}, status=401)
    return JsonResponse(
        {
            "authenticated": True,
            "username": request.user.username,
            "views": request.session.get("views", 0),
        }
    )


urlpatterns = [
    path("login", login_view),
    path("account", account_view),
    path("logout", logout_view),
    path("api/me", me_view),
]


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 8000
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    User.objects.create_user("alice", password="pw-alice")
    User.objects.create_user("bob", password="pw-bob")
    print("django app listening on http://%s:%d" % (host, port), file=sys.stderr, flush=True)
    run(host, port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
