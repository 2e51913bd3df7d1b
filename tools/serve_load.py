"""The HTTP service under load: a real `fer-core serve` on 127.0.0.1 and 1, 4, 16 concurrent clients
posting real photos for a fixed time; requests/s, latency percentiles, errors and the server's memory
round after round, beside the in-process facade's time for the same photo.

    .venv/bin/python tools/serve_load.py [--seconds 20] [--clients 1,4,16] [--rounds 2] [--workers 1]
        [--model attention_cnn] [--json OUT.json]

The photos are scikit-image's astronaut (one face, 512x512 JPEG) and a two-face 1024x512 picture
made of it; each request posts one of them as multipart, in turn. Memory is the resident set of the
server and its worker processes (from /proc), read before the first round and after each round.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import requests

ROOT = Path(__file__).resolve().parents[1]


def photos() -> list[tuple[str, bytes]]:
    import skimage.data
    from PIL import Image

    rgb = skimage.data.astronaut()
    out = []
    for name, image in (("astronaut.jpg", rgb), ("two.jpg", np.concatenate([rgb, rgb[:, ::-1]], axis=1))):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, "JPEG", quality=90)
        out.append((name, buffer.getvalue()))
    return out


def resident_mb(pid: int) -> float:
    """RSS of the process and its children (uvicorn's workers), in MB."""
    total = 0
    for task in [pid, *children(pid)]:
        try:
            for line in Path(f"/proc/{task}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if int((entry / "stat").read_text().split(") ", 1)[1].split()[1]) == pid:
                    found.append(int(entry.name))
            except (OSError, IndexError, ValueError):
                pass
    return found + [grandchild for child in found for grandchild in children(child)]


def start(port: int, workers: int, model: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "fer_core", "serve", "--port", str(port), "--workers", str(workers)]
    process = subprocess.Popen(command + ["--model", model], cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{url}/health", timeout=2).status_code == 200:
                # with several workers, each loads its own model: warm them all
                for _ in range(4 * workers):
                    requests.get(f"{url}/health", timeout=30)
                return process
        except requests.ConnectionError:
            pass
        time.sleep(0.5)
    process.kill()
    raise SystemExit("the server did not become healthy")


def load_round(url: str, clients: int, seconds: float, files) -> dict:
    latencies, errors, lock = [], [0], threading.Lock()
    stop = time.monotonic() + seconds

    def client(k: int) -> None:
        session = requests.Session()
        n = k
        while time.monotonic() < stop:
            name, data = files[n % len(files)]
            n += 1
            began = time.perf_counter()
            try:
                response = session.post(f"{url}/v1/analyze", files=[("files", (name, data))], timeout=60)
                ok = response.status_code == 200 and not response.json()["results"][0]["error"]
            except requests.RequestException:
                ok = False
            elapsed = time.perf_counter() - began
            with lock:
                latencies.append(elapsed) if ok else None
                errors[0] += 0 if ok else 1

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.monotonic() - began
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "errors": errors[0],
        "requests_per_s": round(len(latencies) / wall, 1),
        "p50_ms": round(float(np.percentile(ms, 50)), 1) if len(ms) else None,
        "p95_ms": round(float(np.percentile(ms, 95)), 1) if len(ms) else None,
        "p99_ms": round(float(np.percentile(ms, 99)), 1) if len(ms) else None,
    }


def in_process_ms(files, model: str) -> dict:
    """The facade's own time per photo, as the server calls it (decode, detect, classify)."""
    sys.path.insert(0, str(ROOT))
    from fer_core.recognizer import Recognizer

    recognizer = Recognizer(model)
    out = {}
    for name, data in files:
        recognizer.results([data], [name])
        times = []
        for _ in range(30):
            began = time.perf_counter()
            recognizer.results([data], [name])
            times.append((time.perf_counter() - began) * 1000)
        out[name] = round(statistics.median(times), 1)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--clients", default="1,4,16")
    parser.add_argument("--rounds", type=int, default=2, help="times each client count is run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--model", default="attention_cnn")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--json", help="write the figures here too")
    args = parser.parse_args()
    files = photos()
    report = {"workers": args.workers, "model": args.model, "cores": os.cpu_count(), "rounds": []}
    report["in_process_ms"] = in_process_ms(files, args.model)
    process = start(args.port, args.workers, args.model)
    url = f"http://127.0.0.1:{args.port}"
    try:
        for name, data in files:  # one request each first: the server's first call builds its engines
            requests.post(f"{url}/v1/analyze", files=[("files", (name, data))], timeout=120)
        single = []
        for _ in range(30):
            began = time.perf_counter()
            requests.post(f"{url}/v1/analyze", files=[("files", files[0])], timeout=60)
            single.append((time.perf_counter() - began) * 1000)
        report["one_client_one_face_ms"] = round(statistics.median(single), 1)
        report["memory_mb_before"] = round(resident_mb(process.pid), 1)
        for round_number in range(args.rounds):
            for clients in [int(c) for c in args.clients.split(",")]:
                figures = load_round(url, clients, args.seconds, files)
                figures["round"] = round_number + 1
                figures["memory_mb_after"] = round(resident_mb(process.pid), 1)
                report["rounds"].append(figures)
                print(json.dumps(figures), flush=True)
    finally:
        process.terminate()
        process.wait(timeout=60)
    print(json.dumps({k: v for k, v in report.items() if k != "rounds"}, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return 1 if any(r["errors"] for r in report["rounds"]) else 0


if __name__ == "__main__":
    sys.exit(main())
