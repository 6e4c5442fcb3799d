#!/usr/bin/env python3
"""A loopback stand-in for the carbon providers, for the shell tests.

Serves the documented paths of both APIs, with bodies shaped like the
fixtures beside this file but timed around now and with a scripted
intensity:

  Electricity Maps   GET /v3/carbon-intensity/latest?zone=Z
                     GET /v3/carbon-intensity/forecast?zone=Z
  UK Carbon Intensity GET /intensity
                     GET /regional/regionid/N
                     GET /intensity/{from}/fw24h
                     GET /regional/intensity/{from}/fw24h/regionid/N

Usage:
  server.py --port-file FILE [--port N] [--state FILE] [--log FILE]

  --port N        listen on 127.0.0.1:N (default 0: any free port)
  --port-file F   write the port there once listening (atomically)
  --state F       JSON re-read on each request (missing: the defaults):
                    intensity    gCO2eq/kWh now (default 300)
                    mode         ok | timeout (sleep 30 s, then answer) |
                                 401 | 429 | 500 | garbage (200, not JSON) |
                                 stale (valid, but 6 hours old)
                    retry_after  Retry-After of a 429, seconds (default 2)
                    token        if set, an Electricity Maps request
                                 without "auth-token: TOKEN" gets 401
                    forecast     [[offset_minutes, intensity], ...]: from
                                 now + offset on, the forecast is that
                                 intensity (before the first: intensity)
  --log F         one JSON line per request: path, query, headers (the
                  auth-token's value replaced by "present", or "absent"
                  when not sent), status

Python 3 standard library only.  Stops on SIGTERM or SIGINT.
"""
import argparse
import json
import os
import re
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

DEFAULTS = {"intensity": 300, "mode": "ok", "retry_after": 2}
REGIONS = {13: ("UKPN London", "London")}
MIX = [("biomass", 4.2), ("coal", 0), ("imports", 11.5), ("gas", 38.1),
       ("nuclear", 15.6), ("other", 0.2), ("hydro", 1.4), ("solar", 0.9),
       ("wind", 28.1)]
args = None
log_lock = threading.Lock()


def load_state():
    state = dict(DEFAULTS)
    try:
        with open(args.state) as f:
            state.update(json.load(f))
    except (TypeError, OSError, ValueError):
        pass  # no file, or one being rewritten: the defaults
    return state


def floor(t, step):
    return datetime.fromtimestamp(int(t.timestamp()) // step * step,
                                  timezone.utc)


def emaps_time(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def uk_time(t):
    return t.strftime("%Y-%m-%dT%H:%MZ")


def index(ci):
    for limit, name in ((50, "very low"), (130, "low"), (210, "moderate"),
                        (310, "high")):
        if ci < limit:
            return name
    return "very high"


def forecast_at(state, now, t):
    """The scripted intensity at t: the last step at or before it."""
    ci = state["intensity"]
    for offset, value in sorted(state.get("forecast") or []):
        if t >= now + timedelta(minutes=offset):
            ci = value
    return ci


def emaps_latest(state, now, zone):
    hour = floor(now, 3600)
    return {"zone": zone, "carbonIntensity": state["intensity"],
            "datetime": emaps_time(hour), "updatedAt": emaps_time(now),
            "createdAt": emaps_time(hour), "emissionFactorType": "lifecycle",
            "isEstimated": False, "estimationMethod": None}


def emaps_forecast(state, now, zone):
    hour = floor(now, 3600)
    points = [hour + timedelta(hours=i) for i in range(24)]
    return {"zone": zone, "updatedAt": emaps_time(now),
            "forecast": [{"carbonIntensity": forecast_at(state, now, t),
                          "datetime": emaps_time(t)} for t in points]}


def uk_period(ci, start, regional, actual=None):
    p = {"from": uk_time(start), "to": uk_time(start + timedelta(minutes=30)),
         "intensity": {"forecast": ci, "index": index(ci)}}
    if regional:
        p["generationmix"] = [{"fuel": f, "perc": v} for f, v in MIX]
    else:
        p["intensity"]["actual"] = actual
    return p


def region(rid, periods):
    dno, short = REGIONS.get(rid, ("DNO region %d" % rid, "Region %d" % rid))
    return {"regionid": rid, "dnoregion": dno, "shortname": short,
            "data": periods}


def uk_fw24h(state, now, start, regional):
    start = floor(start, 1800)
    return [uk_period(forecast_at(state, now, t), t, regional)
            for t in (start + timedelta(minutes=30 * i) for i in range(48))]


def parse_from(text):
    t = datetime.strptime(text.rstrip("Zz"), "%Y-%m-%dT%H:%M")
    return t.replace(tzinfo=timezone.utc)


def route(path, query, state, now):
    """The body for a path, or None for a 404."""
    zone = (query.get("zone") or ["DE"])[0]
    half = floor(now, 1800)
    ci = state["intensity"]
    if path == "/v3/carbon-intensity/latest":
        return emaps_latest(state, now, zone)
    if path == "/v3/carbon-intensity/forecast":
        return emaps_forecast(state, now, zone)
    if path == "/intensity":
        return {"data": [uk_period(ci, half, False, actual=ci)]}
    m = re.fullmatch(r"/regional/regionid/(\d+)", path)
    if m:
        return {"data": [region(int(m[1]), [uk_period(ci, half, True)])]}
    m = re.fullmatch(r"/intensity/([^/]+)/fw24h", path)
    if m:
        return {"data": uk_fw24h(state, now, parse_from(m[1]), False)}
    m = re.fullmatch(r"/regional/intensity/([^/]+)/fw24h/regionid/(\d+)", path)
    if m:
        return {"data": region(int(m[2]),
                               uk_fw24h(state, now, parse_from(m[1]), True))}
    return None


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        state = load_state()
        url = urlsplit(self.path)
        status, body, headers = self.answer(url, state)
        if state["mode"] == "timeout":
            time.sleep(30)
        try:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except OSError:
            pass  # the client gave up (a timeout test)
        self.log(url, status)

    def answer(self, url, state):
        mode = str(state["mode"])
        emaps = url.path.startswith("/v3/")
        if emaps and state.get("token") and \
                self.headers.get("auth-token") != state["token"]:
            return 401, b'{"error":"auth-token missing or wrong"}', []
        if mode in ("401", "500"):
            return int(mode), b'{"error":"scripted"}', []
        if mode == "429":
            return 429, b'{"error":"rate limited"}', \
                [("Retry-After", str(state["retry_after"]))]
        now = datetime.now(timezone.utc)
        if mode == "stale":
            now -= timedelta(hours=6)
        try:
            data = route(url.path, parse_qs(url.query), state, now)
        except ValueError:
            return 400, b'{"error":"bad from"}', []
        if data is None:
            return 404, b'{"error":"no such path"}', []
        if mode == "garbage":
            return 200, b"<html>this is not JSON", []
        return 200, json.dumps(data).encode(), []

    def log(self, url, status):
        if not args.log:
            return
        headers = {k.lower(): v for k, v in self.headers.items()}
        headers["auth-token"] = "present" if "auth-token" in headers \
            else "absent"
        line = json.dumps({"path": url.path, "query": url.query,
                           "headers": headers, "status": status})
        with log_lock, open(args.log, "a") as f:
            f.write(line + "\n")

    def log_message(self, fmt, *a):
        pass  # the --log file says it all


def main():
    global args
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--state")
    p.add_argument("--log")
    args = p.parse_args()
    srv = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    srv.daemon_threads = True
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, args.port_file)
    signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
