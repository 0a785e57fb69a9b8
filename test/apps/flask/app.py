"""Minimal Flask + Flask-Login app for sessiongate's integration tests.

Run: /usr/bin/python3 test/apps/flask/app.py PORT [HOST]

Uses Flask's own signed-cookie session (cookie `session`) and Flask-Login's
login_user/logout_user/login_required with "remember me" (cookie
`remember_token`), served by Werkzeug's threaded development server.
"""

import sys

from flask import Flask, jsonify, redirect, request, session
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

app = Flask(__name__)
app.config.update(
    SECRET_KEY="sessiongate-test-flask-secret-key-not-for-production",
    SESSION_COOKIE_NAME="session",
    SESSION_COOKIE_SAMESITE="Lax",
    REMEMBER_COOKIE_NAME="remember_token",
    REMEMBER_COOKIE_HTTPONLY=True,
    REMEMBER_COOKIE_SAMESITE="Lax",
)

login_manager = LoginManager(app)
login_manager.login_view = "login"  # login_required redirects here


class User(UserMixin):
    def __init__(self, username, password):
        self.id = username
        # Few iterations: a throwaway test app, and start-up should be quick.
        self.password_hash = generate_password_hash(password, method="pbkdf2:sha256:1000")


USERS = {name: User(name, pw) for name, pw in (("alice", "pw-alice"), ("bob", "pw-bob"))}


@login_manager.user_loader
def load_user(user_id):
    return USERS.get(user_id)


@login_manager.unauthorized_handler
def unauthorized():
    return redirect("/login")


@app.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        error = "<p>bad credentials</p>" if request.args.get("error") else ""
        return (
            "<!doctype html><title>login</title>%s"
            '<form method="post" action="/login"><input name="username">'
            ' <input name="password" type="password">'
            ' <label><input type="checkbox" name="remember" value="1"> remember me</label>'
            " <button>log in</button></form>" % error
        )
    user = USERS.get(request.form.get("username", ""))
    if user is None or not check_password_hash(user.password_hash, request.form.get("password", "")):
        # Like many apps: count failures in the session, so a failed login
        # also sends a (fresh) session cookie.
        session["login_failures"] = session.get("login_failures", 0) + 1
        return redirect("/login?error=1")
    login_user(user, remember=request.form.get("remember") == "1")
    return redirect("/account")


@app.route("/account")
@login_required
def account():
    return "hello %s" % current_user.id, 200, {"Content-Type": "text/plain; charset=utf-8"}


@app.route("/api/me")
def me():
    if not current_user.is_authenticated:
        return jsonify(authenticated=False), 401
    return jsonify(authenticated=True, username=current_user.id, fresh=bool(session.get("_fresh")))


@app.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect("/login")


if __name__ == "__main__":
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    host = sys.argv[2] if len(sys.argv) > 2 else "127.0.0.1"
    app.run(host=host, port=port, threaded=True, use_reloader=False, debug=False)
