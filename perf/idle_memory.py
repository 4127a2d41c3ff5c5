#!/usr/bin/env python3
"""User-space bytes per idle connection on `ringwire serve`: WebSocket connections on its
HTTP/WebSocket listener (`--proto ws`, the default), raw connections on its TCP echo
listener (`--proto tcp`), Server-Sent Events subscribers (`--proto sse`) or keep-alive HTTP/1.1
connections between requests (`--proto http`: one GET answered, then idle).

Starts the server (one thread), reads its RSS, opens N connections that each echo one message
(WebSocket: the handshake, then one masked one-byte text message echoed back; TCP: one byte),
so the server has accepted them, finished any handshake and armed their receive, reads the RSS
again, and reports (RSS delta) / N. The kernel's own socket memory (/proc/net/sockstat "mem", in pages) is
reported apart. Connections come from 127.0.0.1..127.0.0.8 to go past one address's ports.

One process may hold only as many sockets as RLIMIT_NOFILE allows. Past that (less a margin),
the connections are spread over several server processes on the same ports (SO_REUSEPORT, as
a multi-process deployment of `ringwire serve` would run), each below the limit, and the RSS
deltas of all of them are added up; the client side likewise opens them from several worker
processes. `--procs K` forces K server processes.

    python3 perf/idle_memory.py --bin target/release/ringwire --driver uring --conns 10000 50000 100000
    python3 perf/idle_memory.py --proto tcp --conns 10000
    python3 perf/idle_memory.py --proto http --peer nginx --conns 10000   # the system's nginx
"""
import argparse, json, math, multiprocessing, os, resource, selectors, shutil, socket, subprocess, sys, tempfile, time


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def slab_kib():
    tot = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(("SReclaimable:", "SUnreclaim:")):
                tot += int(line.split()[1])
    return tot


def sockstat_pages():
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                parts = line.split()
                return int(parts[parts.index("mem") + 1])
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


# The client half of a WebSocket handshake (RFC 6455 section 1.3's sample key), followed at
# once by a masked one-byte text message "x" (mask 01 02 03 04).
WS_HELLO = (b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            + bytes([0x81, 0x81, 1, 2, 3, 4, ord("x") ^ 1]))
WS_ACCEPT = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
# A Server-Sent Events subscriber of one channel (`ringwire serve`'s /events: with a channel it
# sends no clock tick, only the 15 s heartbeat).
SSE_HELLO = b"GET /events?channel=idle HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
# A keep-alive HTTP/1.1 client after its first request (`ringwire serve`'s built-in client
# library, a 200 with Content-Length), waiting for its next one.
HTTP_HELLO = b"GET /ringwire.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
HELLO = {"tcp": b"x", "ws": WS_HELLO, "sse": SSE_HELLO, "http": HTTP_HELLO}


def echoed(proto, got):
    """Whether `got` holds the whole answer: the echoed byte, the 101 and the echoed frame, or
    the SSE head and the stream's first bytes."""
    if proto == "tcp":
        return len(got) >= 1
    if proto == "http":
        head, sep, body = got.partition(b"\r\n\r\n")
        if not sep:
            return False
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"request refused: {head[:200]!r}")
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                return len(body) >= int(value)
        raise RuntimeError(f"no Content-Length: {head[:200]!r}")
    if proto == "sse":
        if got.startswith(b"HTTP/1.1 ") and not got.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(f"subscription refused: {got[:200]!r}")
        # The head, then the stream's first bytes (`: ok`, chunk-framed).
        return b": ok" in got.partition(b"\r\n\r\n")[2]
    head, sep, rest = got.partition(b"\r\n\r\n")
    if not sep:
        return False
    if not head.startswith(b"HTTP/1.1 101") or WS_ACCEPT not in head:
        raise RuntimeError(f"handshake refused: {head[:200]!r}")
    if len(rest) >= 3:
        if rest[:3] != b"\x81\x01x":
            raise RuntimeError(f"bad echo frame: {rest[:16]!r}")
        return True
    return False


def open_conns(port, n, proto, first=0):
    conns = []
    for i in range(first, first + n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((f"127.0.0.{1 + i % 8}", 0))
        s.connect(("127.0.0.1", port))
        # At once: the server's handshake limit runs from the accept.
        s.sendall(HELLO[proto])
        s.setblocking(False)
        conns.append(s)
    # One message each, echoed back: the server has accepted and serviced every connection.
    sel = selectors.DefaultSelector()
    got = {}
    for s in conns:
        sel.register(s, selectors.EVENT_READ)
        got[s] = b""
    pending = len(conns)
    deadline = time.time() + 120
    while pending and time.time() < deadline:
        for key, _ in sel.select(timeout=1):
            s = key.fileobj
            data = s.recv(4096)
            if not data:
                raise RuntimeError("server closed a connection")
            got[s] += data
            if echoed(proto, got[s]):
                sel.unregister(s)
                pending -= 1
    if pending:
        raise RuntimeError(f"{pending} connections never echoed")
    return conns


def client_worker(port, n, proto, first, pipe):
    """Open `n` connections (source addresses from index `first`), report, hold them until
    told, close them."""
    try:
        conns = open_conns(port, n, proto, first)
    except Exception as e:  # reported to the parent, which fails the run
        pipe.send(f"error: {e}")
        return
    pipe.send("ok")
    pipe.recv()
    for s in conns:
        s.close()
    pipe.send("closed")


def open_in_workers(port, n, per_worker, proto, first=0):
    """Open `n` connections from worker processes of at most `per_worker` each (a process may
    hold only RLIMIT_NOFILE sockets); returns the workers, holding their connections."""
    ctx = multiprocessing.get_context("fork")
    workers = []
    k = max(1, math.ceil(n / per_worker))
    for w in range(k):
        share = n // k + (1 if w < n % k else 0)
        mine, theirs = ctx.Pipe()
        p = ctx.Process(target=client_worker, args=(port, share, proto, first, theirs))
        p.start()
        theirs.close()  # a worker that dies shows as EOF, not a wait forever
        first += share
        workers.append((p, mine))
    errors = []
    for p, pipe in workers:
        try:
            msg = pipe.recv()
        except (EOFError, OSError) as e:
            msg = f"lost: {e}"
        if msg != "ok":
            errors.append(f"{msg} (exit code {p.exitcode})")
    if errors:
        close_workers(workers)
        raise RuntimeError(f"client workers: {errors}")
    return workers


def close_workers(workers):
    for p, pipe in workers:
        try:
            pipe.send("close")
        except (OSError, ValueError):
            pass
    for p, pipe in workers:
        try:
            pipe.recv()
        except (EOFError, OSError):
            pass
        p.join(timeout=30)


NGINX_CONF = """worker_processes 1;
worker_rlimit_nofile {nofile};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections {conns}; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    types {{ text/javascript js; }}
    server {{
        listen 127.0.0.1:{port};
        root {dir}/www;
    }}
}}
"""


def start_nginx(http, conns, workdir):
    """nginx from the system (one worker, its defaults otherwise: keep-alive 75 s) serving a
    /ringwire.js of about the same size as `ringwire serve`'s (4,950 B against 4,929); returns the master and the worker pid."""
    os.chmod(workdir, 0o755)  # the worker runs as nobody when started as root
    os.makedirs(f"{workdir}/www")
    with open(f"{workdir}/www/ringwire.js", "wb") as f:
        f.write(b"/* stand-in */\n" * 330)
    with open(f"{workdir}/nginx.conf", "w") as f:
        f.write(NGINX_CONF.format(dir=workdir, port=http, conns=conns, nofile=conns + 100))
    master = subprocess.Popen(["nginx", "-c", f"{workdir}/nginx.conf"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 10
    while time.time() < deadline:
        kids = []
        for d in os.listdir("/proc"):
            if d.isdigit():
                try:
                    with open(f"/proc/{d}/stat") as f:
                        if int(f.read().rsplit(")", 1)[1].split()[1]) == master.pid:
                            kids.append(int(d))
                except (OSError, ValueError, IndexError):
                    pass
        if kids:
            try:
                socket.create_connection(("127.0.0.1", http), timeout=1).close()
                return master, kids[0]
            except OSError:
                pass
        time.sleep(0.1)
    master.kill()
    raise RuntimeError("nginx did not start")


class Pid:
    """A process measured by pid (the nginx worker)."""
    def __init__(self, pid):
        self.pid = pid


def measure(binary, driver, n, proto, procs, per_process, serve_args=(), peer=None):
    """RSS growth of `procs` server processes sharing the ports while `n` connections open
    (with `peer`: of that server's worker process instead)."""
    port, http = free_port(), free_port()
    servers = []
    masters = []
    workdir = None
    try:
        if peer == "nginx":
            workdir = tempfile.mkdtemp(prefix="ringwire-idle-nginx-")
            master, worker = start_nginx(http, n + 1000 * procs + 100, workdir)
            masters.append(master)
            servers.append(Pid(worker))
        for _ in range(procs if peer is None else 0):
            servers.append(subprocess.Popen(
                [binary, "serve", "--threads", "1", "--driver", driver,
                 "--tcp-echo", f"127.0.0.1:{port}", "--bind", f"127.0.0.1:{http}",
                 "--max-connections", str(n + 1000 * procs + 10)] + list(serve_args),
                stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
            for _ in range(2):
                line = servers[-1].stdout.readline()
                if "listening on" not in line:
                    raise RuntimeError(f"server did not start: {line!r}")
        time.sleep(0.2)
        # Warm up allocator paths and the receive buffer pool (the ring cycles through all of
        # its buffers), then measure from there. The warm-up connections stay open: memory
        # they touched and freed would be reused by the measured ones and hide their cost.
        target = port if proto == "tcp" else http
        warm = open_in_workers(target, 1000 * procs, per_process, proto)
        time.sleep(0.5)
        rss0 = sum(rss_kib(s.pid) for s in servers)
        mem0, slab0 = sockstat_pages(), slab_kib()
        workers = open_in_workers(target, n, per_process, proto, first=1000 * procs)
        # Idle means idle: let the runtime's sweep (every 250 ms, 16k connections a time)
        # return the out-queue storage of connections that have nothing queued.
        time.sleep(0.5 + 0.25 * (n // (16384 * procs) + 1))
        rss1 = sum(rss_kib(s.pid) for s in servers)
        mem1, slab1 = sockstat_pages(), slab_kib()
        res = {
            "server": peer or "ringwire",
            "driver": driver, "proto": proto, "conns": n, "server_procs": procs,
            "serve_args": list(serve_args),
            "rss_before_kib": rss0, "rss_after_kib": rss1,
            "user_bytes_per_conn": round((rss1 - rss0) * 1024 / n, 1),
            "kernel_tcp_mem_bytes_per_conn": round((mem1 - mem0) * 4096 / n, 1),
            "kernel_slab_bytes_per_conn_both_ends": round((slab1 - slab0) * 1024 / n, 1),
        }
        close_workers(workers)
        close_workers(warm)
        return res
    finally:
        for m in masters:
            m.terminate()
            m.wait(timeout=20)
        if workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        servers = [s for s in servers if isinstance(s, subprocess.Popen)]
        for srv in servers:
            srv.terminate()
        for srv in servers:
            try:
                srv.wait(timeout=20)
            except subprocess.TimeoutExpired:
                srv.kill()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default="target/release/ringwire")
    ap.add_argument("--driver", action="append", default=[])
    ap.add_argument("--conns", type=int, nargs="+", default=[10000])
    ap.add_argument("--proto", choices=["ws", "tcp", "sse", "http"], default="ws",
                    help="WebSocket connections (default), raw TCP echo connections, Server-Sent "
                         "Events subscribers of one channel, or keep-alive HTTP/1.1 connections "
                         "after one request")
    ap.add_argument("--procs", type=int, default=0,
                    help="server processes sharing the ports (default: as few as keep each "
                         "below RLIMIT_NOFILE)")
    ap.add_argument("--serve-arg", action="append", default=[], metavar="ARG",
                    help="an extra argument for `ringwire serve` (repeat it), e.g. "
                         "--serve-arg=--ws-heartbeat-ms=30000")
    ap.add_argument("--peer", choices=["nginx"],
                    help="measure this server from the system instead of ringwire (with "
                         "--proto http: nginx, one worker process)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    if a.peer and a.proto != "http":
        sys.exit("--peer needs --proto http")
    # Every process (servers, client workers) gets the hard limit; each holds at most
    # `per_process` connections, leaving room for its other descriptors.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    limit = hard if hard != resource.RLIM_INFINITY else 1 << 20
    per_process = min(limit, 1 << 20) - 2000
    if per_process < 2000:
        sys.exit(f"the hard limit of file descriptors is {hard}: too low")
    out = []
    for d in (a.driver or ["uring", "epoll"]) if not a.peer else ["-"]:
        for n in a.conns:
            procs = a.procs or math.ceil((n + 1000) / per_process)
            if (n + 1000 * procs) / procs > per_process:
                sys.exit(f"{procs} server processes cannot hold {n} connections below {limit} descriptors each")
            if a.peer:
                procs = 1
            r = measure(a.bin, d, n, a.proto, procs, per_process, a.serve_arg, a.peer)
            out.append(r)
            if not a.json:
                print(f"server={r['server']} driver={d:5} proto={a.proto} conns={n:6} server-procs={procs}  user-space {r['user_bytes_per_conn']:7.1f} B/conn  "
                      f"(RSS {r['rss_before_kib']} -> {r['rss_after_kib']} KiB)  "
                      f"kernel: TCP buffers {r['kernel_tcp_mem_bytes_per_conn']:.0f} B/conn, "
                      f"slab {r['kernel_slab_bytes_per_conn_both_ends']:.0f} B/conn (both ends, whole machine)"
                      + (f"  serve args: {' '.join(a.serve_arg)}" if a.serve_arg else ""),
                      flush=True)
    if a.json:
        print(json.dumps(out, indent=1))


if __name__ == "__main__":
    sys.exit(main())
