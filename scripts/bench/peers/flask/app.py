"""The benchmark's Flask peer: the sign-in of Okta's Flask sample (the app this project started
from), written from its documentation and Flask's: /login redirects to the provider with state,
nonce and PKCE kept in Flask's signed-cookie session; /authorization-code/callback checks the
state, exchanges the code (HTTP Basic), verifies the ID token (signature with the provider's
keys, issuer, audience, expiry, nonce), asks userinfo and signs the user in with flask-login;
/profile is for signed-in users. Run by scripts/bench/bench.mjs with gunicorn, as the sample's
users deploy it. Environment: ISSUER, CLIENT_ID, CLIENT_SECRET, APP_URL, SECRET_KEY.
"""
import base64
import hashlib
import os
import secrets

import jwt
import requests
from flask import Flask, abort, redirect, render_template, request, session, url_for
from flask_login import LoginManager, UserMixin, current_user, login_required, login_user, logout_user

ISSUER = os.environ["ISSUER"]
CLIENT_ID = os.environ["CLIENT_ID"]
CLIENT_SECRET = os.environ["CLIENT_SECRET"]
REDIRECT_URI = os.environ["APP_URL"].rstrip("/") + "/authorization-code/callback"

app = Flask(__name__)
app.secret_key = os.environ["SECRET_KEY"]
login_manager = LoginManager(app)
login_manager.login_view = "login"

# The provider's metadata and keys, fetched once at start (the sample hard-codes its endpoints).
config = requests.get(f"{ISSUER}/.well-known/openid-configuration", timeout=10).json()
keys = jwt.PyJWKClient(config["jwks_uri"], cache_keys=True)
http = requests.Session()

# The sample keeps its users in memory.
USERS = {}


class User(UserMixin):
    def __init__(self, sub, name, email):
        self.id, self.name, self.email = sub, name, email


@login_manager.user_loader
def load_user(user_id):
    return USERS.get(user_id)


@app.route("/")
def home():
    return render_template("page.html", title="Home", user=current_user, profile=False)


@app.route("/profile")
@login_required
def profile():
    return render_template("page.html", title="Profile", user=current_user, profile=True)


@app.route("/login")
def login():
    session["app_state"] = secrets.token_urlsafe(32)
    session["code_verifier"] = secrets.token_urlsafe(64)
    session["nonce"] = secrets.token_urlsafe(32)
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(session["code_verifier"].encode()).digest()
    ).decode().rstrip("=")
    query = {
        "client_id": CLIENT_ID,
        "redirect_uri": REDIRECT_URI,
        "scope": "openid email profile",
        "state": session["app_state"],
        "nonce": session["nonce"],
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_type": "code",
        "response_mode": "query",
    }
    return redirect(requests.Request("GET", config["authorization_endpoint"], params=query).prepare().url)


@app.route("/authorization-code/callback")
def callback():
    if request.args.get("state") != session.pop("app_state", None):
        abort(403, "The state does not match.")
    code = request.args.get("code")
    if not code:
        abort(403, "The code was not returned or is not accessible.")
    tokens = http.post(
        config["token_endpoint"],
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT_URI,
            "code_verifier": session.pop("code_verifier", ""),
        },
        auth=(CLIENT_ID, CLIENT_SECRET),
        timeout=10,
    ).json()
    if tokens.get("token_type", "").lower() != "bearer" or "id_token" not in tokens:
        abort(403, "Unsupported token type, or no ID token.")
    key = keys.get_signing_key_from_jwt(tokens["id_token"]).key
    claims = jwt.decode(
        tokens["id_token"], key, algorithms=["RS256"], audience=CLIENT_ID, issuer=ISSUER
    )
    if claims.get("nonce") != session.pop("nonce", None):
        abort(403, "The nonce does not match.")
    info = http.get(
        config["userinfo_endpoint"],
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=10,
    ).json()
    if info.get("sub") != claims["sub"]:
        abort(403, "userinfo is about someone else.")
    user = User(claims["sub"], info.get("name"), info.get("email"))
    USERS[user.id] = user
    login_user(user)
    return redirect(url_for("profile"))


@app.route("/logout", methods=["POST"])
def logout():
    logout_user()
    return redirect(url_for("home"))
