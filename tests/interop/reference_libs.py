#!/usr/bin/env python3
"""Cross-checks perfhook against the reference verifiers and signers, both directions.

- `perfhook sign --scheme stripe` output passes stripe-python's WebhookSignature.verify_header;
  stripe-python's generate_signature_header passes `perfhook verify-signature --scheme stripe`.
- `perfhook sign --scheme standard` output passes standardwebhooks' Webhook.verify;
  Webhook.sign passes `perfhook verify-signature --scheme standard`.
- The webhook notifier's forward (`perfhook notify test` to a local HTTP server) passes
  standardwebhooks' Webhook.verify.
- Each direction also checks a tampered body is rejected, so a check that cannot fail fails.

usage: reference_libs.py PATH_TO_PERFHOOK   (needs: pip install stripe standardwebhooks)
Prints `N passed, N failed` and exits non-zero on any failure.
"""
import datetime
import http.server
import os
import subprocess
import sys
import tempfile
import threading
import time

import stripe
from standardwebhooks import Webhook

PERFHOOK = sys.argv[1]
STRIPE_SECRET = "whsec_interop_stripe_secret_0123456789"
STD_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
BODY = b'{"id":"evt_interop_1","type":"usage.threshold_reached","livemode":true,"data":{"usage":{"percent":80}}}'
ENV = dict(os.environ, STRIPE_SECRET=STRIPE_SECRET, STD_SECRET=STD_SECRET)

results = []


def check(name, ok):
    results.append(ok)
    print(("ok   " if ok else "FAIL ") + name)


def perfhook(*args):
    return subprocess.run([PERFHOOK, *args], env=ENV, capture_output=True, text=True)


def sign(scheme, env, body_path):
    run = perfhook("sign", "--scheme", scheme, "--secret-env", env, "--body", body_path)
    assert run.returncode == 0, run.stderr
    return dict(line.split(": ", 1) for line in run.stdout.splitlines())


def verify(scheme, env, body_path, headers):
    args = ["verify-signature", "--scheme", scheme, "--secret-env", env, "--body", body_path]
    for name, value in headers.items():
        args += ["-H", "%s: %s" % (name, value)]
    return perfhook(*args)


with tempfile.TemporaryDirectory() as tmp:
    body_path = os.path.join(tmp, "body.json")
    tampered_path = os.path.join(tmp, "tampered.json")
    open(body_path, "wb").write(BODY)
    open(tampered_path, "wb").write(BODY.replace(b"80", b"81"))

    # perfhook -> stripe-python
    headers = sign("stripe", "STRIPE_SECRET", body_path)
    try:
        stripe.WebhookSignature.verify_header(BODY, headers["Stripe-Signature"], STRIPE_SECRET, tolerance=300)
        check("perfhook sign --scheme stripe verifies with stripe-python", True)
    except stripe.SignatureVerificationError as error:
        check("perfhook sign --scheme stripe verifies with stripe-python (%s)" % error, False)
    try:
        stripe.WebhookSignature.verify_header(BODY.replace(b"80", b"81"), headers["Stripe-Signature"], STRIPE_SECRET, tolerance=300)
        check("stripe-python rejects a tampered body signed by perfhook", False)
    except stripe.SignatureVerificationError:
        check("stripe-python rejects a tampered body signed by perfhook", True)

    # stripe-python -> perfhook
    t = int(time.time())
    sig = stripe.WebhookSignature._compute_signature("%d.%s" % (t, BODY.decode()), STRIPE_SECRET)
    header = {"Stripe-Signature": "t=%d,v1=%s" % (t, sig)}
    run = verify("stripe", "STRIPE_SECRET", body_path, header)
    check("stripe-python signature verifies with perfhook (%s)" % run.stdout.strip(), run.returncode == 0)
    run = verify("stripe", "STRIPE_SECRET", tampered_path, header)
    check("perfhook rejects a tampered body signed by stripe-python", run.returncode == 1)

    # perfhook -> standardwebhooks
    wh = Webhook(STD_SECRET)
    headers = sign("standard", "STD_SECRET", body_path)
    try:
        wh.verify(BODY, headers)
        check("perfhook sign --scheme standard verifies with standardwebhooks", True)
    except Exception as error:  # the library raises its own WebhookVerificationError
        check("perfhook sign --scheme standard verifies with standardwebhooks (%r)" % error, False)
    try:
        wh.verify(BODY.replace(b"80", b"81"), headers)
        check("standardwebhooks rejects a tampered body signed by perfhook", False)
    except Exception:
        check("standardwebhooks rejects a tampered body signed by perfhook", True)

    # standardwebhooks -> perfhook
    now = datetime.datetime.now(tz=datetime.timezone.utc)
    msg_id = "msg_interop_1"
    signature = wh.sign(msg_id, now, BODY.decode())
    header = {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signature}
    run = verify("standard", "STD_SECRET", body_path, header)
    check("standardwebhooks signature verifies with perfhook (%s)" % run.stdout.strip(), run.returncode == 0)
    run = verify("standard", "STD_SECRET", tampered_path, header)
    check("perfhook rejects a tampered body signed by standardwebhooks", run.returncode == 1)

    # perfhook's webhook notifier -> standardwebhooks, over HTTP
    forwarded = []

    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            forwarded.append((dict(self.headers.items()), self.rfile.read(length)))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.handle_request, daemon=True).start()
    secret_path = os.path.join(tmp, "forward.secret")
    open(secret_path, "w").write(STD_SECRET)
    config_path = os.path.join(tmp, "perfhook.toml")
    open(config_path, "w").write(
        '[admin]\nenabled = false\n'
        '[[endpoints]]\nname = "perf"\npath = "/webhooks/perf"\nnotifiers = ["forward"]\n'
        'secrets = [{ name = "primary", env = "STRIPE_SECRET" }]\n'
        '[notifiers.forward]\nkind = "webhook"\nurl = "http://127.0.0.1:%d/hook"\nsecret_file = "%s"\n'
        % (server.server_address[1], secret_path)
    )
    run = perfhook("notify", "test", "--config", config_path, "--notifier", "forward")
    check("perfhook notify test forwards (%s)" % (run.stdout.strip() or run.stderr.strip()), run.returncode == 0 and len(forwarded) == 1)
    if forwarded:
        headers, body = forwarded[0]
        lowered = {name.lower(): value for name, value in headers.items()}
        try:
            wh.verify(body, lowered)
            check("the webhook notifier's forward verifies with standardwebhooks", True)
        except Exception as error:
            check("the webhook notifier's forward verifies with standardwebhooks (%r)" % error, False)
        try:
            wh.verify(body.replace(b"80", b"81"), lowered)
            check("standardwebhooks rejects a tampered forward", False)
        except Exception:
            check("standardwebhooks rejects a tampered forward", True)
    server.server_close()

passed = sum(results)
failed = len(results) - passed
print("%d passed, %d failed" % (passed, failed))
sys.exit(1 if failed else 0)
