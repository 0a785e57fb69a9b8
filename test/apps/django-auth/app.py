"""Django app with django.contrib.auth's own login and logout views, for sessiongate's presets.

Run: /usr/bin/python3 test/apps/django-auth/app.py PORT HOST DB_FILE SESSION_ENGINE

SESSION_ENGINE is `db` (django.contrib.sessions.backends.db, Django's default: the session key in
`sessionid`, the data in the database) or `signed_cookies` (the data in `sessionid` itself, signed).
LoginView at /accounts/login/ (CSRF enforced: the `csrftoken` cookie and the form's
`csrfmiddlewaretoken`), LogoutView at /accounts/logout/, a @login_required page at /accounts/profile/
(LOGIN_REDIRECT_URL's default) that writes the session on every view. Users alice/pw-alice and
bob/pw-bob, in an SQLite file that is migrated and seeded at startup.
"""

import sys

import django
from django.conf import settings

port, host, db_file, engine = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
if engine not in ("db", "signed_cookies"):
    sys.exit("SESSION_ENGINE must be db or signed_cookies")

settings.configure(
    DEBUG=False,
    SECRET_KEY="sessiongate-test-django-auth-secret-key-not-for-production",
    ALLOWED_HOSTS=["*"],
    ROOT_URLCONF=__name__,
    INSTALLED_APPS=[
        "django.contrib.contenttypes",
        "django.contrib.auth",
        "django.contrib.sessions",
    ],
    MIDDLEWARE=[
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
    ],
    SESSION_ENGINE="django.contrib.sessions.backends." + engine,
    LOGOUT_REDIRECT_URL="/accounts/login/",
    TEMPLATES=[
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                # The templates in memory: nothing on disk but this file.
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {
                            "registration/login.html": (
                                "<!doctype html><title>login</title>"
                                "{% if form.errors %}<p>bad credentials</p>{% endif %}"
                                '<form method="post">{% csrf_token %}{{ form.as_p }}'
                                '<input type="hidden" name="next" value="{{ next }}">'
                                "<button>log in</button></form>"
                            ),
                            "profile.html": (
                                "<!doctype html><title>profile</title><p>hello {{ username }}</p>"
                                '<form method="post" action="/accounts/logout/">{% csrf_token %}'
                                "<button>log out</button></form>"
                            ),
                        },
                    )
                ],
            },
        }
    ],
    DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": db_file, "OPTIONS": {"timeout": 10}}},
    # A fast hasher: the default PBKDF2 costs ~0.3 s per login.
    PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
    DEFAULT_AUTO_FIELD="django.db.models.AutoField",
    USE_TZ=True,
    LOGGING_CONFIG=None,
)
django.setup()

from django.contrib.auth import views as auth_views  # noqa: E402
from django.contrib.auth.decorators import login_required  # noqa: E402
from django.contrib.auth.models import User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.core.servers.basehttp import run  # noqa: E402
from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.shortcuts import render  # noqa: E402
from django.urls import path  # noqa: E402


@login_required
def profile_view(request):
    # Writes the session on every view: a signed cookie is re-issued with a new value each time.
    request.session["views"] = request.session.get("views", 0) + 1
    return render(request, "profile.html", {"username": request.user.username})


urlpatterns = [
    path("accounts/login/", auth_views.LoginView.as_view()),
    path("accounts/logout/", auth_views.LogoutView.as_view()),
    path("accounts/profile/", profile_view),
]


def main():
    call_command("migrate", run_syncdb=True, verbosity=0, interactive=False)
    User.objects.create_user("alice", password="pw-alice")
    User.objects.create_user("bob", password="pw-bob")
    print("django-auth app (%s sessions) on http://%s:%d" % (engine, host, port), file=sys.stderr, flush=True)
    run(host, port, get_wsgi_application(), threading=True)


if __name__ == "__main__":
    main()
