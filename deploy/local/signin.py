#!/usr/bin/env python3
"""Headless browser for deploy/local: completes one ferry sign-in.

`ferry login` and `ferryctl login` (with --no-browser) print an address and
wait for a browser to come back to their loopback port. Where no browser is
at hand, this script plays the browser: it opens that address, signs in at
the demo OpenID Provider with a username and password, enrolls or verifies
TOTP like an authenticator app would, and follows the last redirect to the
waiting client.

It keeps each user's TOTP secret in STATE_DIR/totp-USER (0600), as a phone
would, and waits for the next 30 s step when the current one was used
already (ferry accepts each code once).

    signin.py --state-dir DIR --ca FERRY_CA --ca IDP_CA URL USER PASSWORD

Standard library only. A demo tool: it does exactly the happy path and
stops with a clear message at anything else.
"""

import argparse
import base64
import hashlib
import hmac
import html
import http.cookiejar
import os
import re
import ssl
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class Browser:
    def __init__(self, cafiles):
        ctx = ssl.create_default_context()
        for f in cafiles:
            ctx.load_verify_locations(cafile=f)
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),  # everything here is local
            urllib.request.HTTPCookieProcessor(self.jar),
            urllib.request.HTTPSHandler(context=ctx),
            NoRedirect(),
        )

    def request(self, url, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        req = urllib.request.Request(url, data=data)
        try:
            resp = self.opener.open(req, timeout=30)
        except urllib.error.HTTPError as e:  # 3xx and 4xx/5xx land here
            resp = e
        body = resp.read().decode("utf-8", "replace")
        loc = resp.headers.get("Location")
        if loc:
            loc = urllib.parse.urljoin(url, loc)
        return resp.status, loc, body


def expect(step, got, want):
    status, loc, body = got
    if status != want:
        text = re.sub(r"<[^>]+>", " ", body)
        text = " ".join(text.split())[:300]
        sys.exit(f"signin: {step}: got HTTP {status}, want {want}: {text}")
    return loc, body


def field(body, name):
    m = re.search(r'name="' + re.escape(name) + r'" value="([^"]*)"', body)
    return html.unescape(m.group(1)) if m else ""


def text_of(body, elem_id):
    m = re.search(r'id="' + re.escape(elem_id) + r'"[^>]*>([^<]*)', body)
    return html.unescape(m.group(1)).strip() if m else ""


def form_action(body):
    m = re.search(r'<form[^>]*action="([^"]*)"', body)
    return html.unescape(m.group(1)) if m else ""


def totp(uri, at):
    """RFC 6238 code of an otpauth:// URI at Unix time at."""
    q = urllib.parse.parse_qs(urllib.parse.urlparse(uri).query)
    secret = q["secret"][0].upper()
    secret += "=" * (-len(secret) % 8)
    key = base64.b32decode(secret)
    digits = int(q.get("digits", ["6"])[0])
    period = int(q.get("period", ["30"])[0])
    algo = {"SHA1": hashlib.sha1, "SHA256": hashlib.sha256, "SHA512": hashlib.sha512}[
        q.get("algorithm", ["SHA1"])[0].upper()
    ]
    step = int(at // period)
    mac = hmac.new(key, struct.pack(">Q", step), algo).digest()
    off = mac[-1] & 0x0F
    code = (struct.unpack(">I", mac[off : off + 4])[0] & 0x7FFFFFFF) % (10**digits)
    return str(code).zfill(digits), step, period


def fresh_code(state_dir, user, uri):
    """A code from a 30 s step not used before by this script for user."""
    used_file = os.path.join(state_dir, f"totp-{user}.step")
    last = int(open(used_file).read()) if os.path.exists(used_file) else -1
    while True:
        code, step, period = totp(uri, time.time())
        if step > last:
            break
        time.sleep(period - time.time() % period + 0.5)
    with open(used_file, "w") as f:
        f.write(str(step))
    return code


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--state-dir", required=True, help="where TOTP secrets are kept")
    ap.add_argument("--ca", action="append", default=[], help="CA file to trust (repeat)")
    ap.add_argument("url", help="the address ferry login or ferryctl login printed")
    ap.add_argument("user")
    ap.add_argument("password")
    a = ap.parse_args()
    os.makedirs(a.state_dir, mode=0o700, exist_ok=True)
    b = Browser(a.ca)
    base = urllib.parse.urlparse(a.url)
    origin = f"{base.scheme}://{base.netloc}"

    # ferry's /login -> the IdP's authorization endpoint -> its login form.
    authz, _ = expect("GET /login", b.request(a.url), 302)
    form_url, _ = expect("GET IdP authorize", b.request(authz), 302)
    _, page = expect("GET IdP login form", b.request(form_url), 200)
    action = urllib.parse.urljoin(form_url, form_action(page))
    m = re.search(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page)
    if not m:
        sys.exit("signin: no request ID on the IdP's login form")
    creds = {"username": a.user, "password": a.password, m.group(1): html.unescape(m.group(2))}
    nxt, _ = expect("POST IdP login form", b.request(action, creds), 302)
    callback, _ = expect("GET IdP authorize callback", b.request(nxt), 302)
    # ferry's /callback -> /mfa.
    expect("GET ferry /callback", b.request(callback), 303)
    mfa = origin + "/mfa"
    _, page = expect("GET /mfa", b.request(mfa), 200)

    secret_file = os.path.join(a.state_dir, f"totp-{a.user}")
    uri = text_of(page, "otpauth")
    enrolling = bool(uri)
    if enrolling:
        fd = os.open(secret_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(uri + "\n")
        print(f"signin: enrolled TOTP for {a.user} (secret kept in {secret_file})", file=sys.stderr)
    elif os.path.exists(secret_file):
        uri = open(secret_file).read().strip()
    else:
        sys.exit(f"signin: {a.user} enrolled TOTP elsewhere; no secret in {secret_file}")
    form = {"csrf": field(page, "csrf"), "code": fresh_code(a.state_dir, a.user, uri)}
    if enrolling:
        # POST-redirect-GET: the code form redirects to the page of codes.
        expect("POST /mfa (enroll)", b.request(mfa, form), 303)
        _, codes = expect("GET /mfa (recovery codes)", b.request(mfa), 200)
        final, _ = expect("POST /mfa/continue", b.request(origin + "/mfa/continue", {"csrf": field(codes, "csrf")}), 303)
    else:
        final, _ = expect("POST /mfa", b.request(mfa, form), 303)

    # Back to the waiting client (desktop) or to /signed-in (browser).
    status, _, _ = b.request(final)
    if status >= 400:
        sys.exit(f"signin: the last redirect ({final}) answered HTTP {status}")
    print(f"signin: signed in as {a.user}", file=sys.stderr)


if __name__ == "__main__":
    main()
