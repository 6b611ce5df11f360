"""Command line of the sandbox: start, clean, ctl (see tests/sandbox/README.md)."""

import argparse
import json
import os
import sys
import urllib.error
import urllib.request


def ctl(args) -> int:
    endpoint = args.endpoint or os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        print("ctl: no sandbox endpoint: pass --endpoint or source the sandbox env file", file=sys.stderr)
        return 2
    method, route, body = "POST", args.what, {}
    if args.what == "fault":
        route = "faults"
        body = {"action": args.action, "count": args.count, "kind": args.kind, "seconds": args.seconds}
        if args.service:
            body["service"] = args.service
    elif args.what == "task-fault":
        route = "task-faults"
        body = {"kind": args.kind, "count": args.count, "after": args.after, "exit_code": args.exit_code}
        if args.image:
            body["image"] = args.image
    elif args.what == "run-failure":
        route = "run-failures"
        body = {"kind": args.kind, "count": args.count}
        if args.image:
            body["image"] = args.image
    elif args.what == "image":
        route = "images"
        try:
            body = {"name": args.name, "entrypoint": json.loads(args.entrypoint), "cmd": json.loads(args.cmd)}
        except ValueError as err:
            print(f"ctl: --entrypoint and --cmd take JSON lists: {err}", file=sys.stderr)
            return 2
    elif args.what == "images":
        method, route, body = "GET", "images", None
    elif args.what == "task-age":
        body = {"task": args.task, "seconds": args.seconds}
    elif args.what == "gateway-fault":
        route = "gateway-faults"
        body = {k: v for k, v in vars(args).items()
                if k in ("drop", "duplicate", "delay", "delay_ms", "kill_after", "recycle_every", "break_every", "stall_every",
                         "idle_close", "seed")
                and v is not None}
    elif args.what == "timing":
        fields = ("step", "stop_grace", "agent_connect", "iam_propagation")
        body = {k: getattr(args, k) for k in fields if getattr(args, k) is not None}
    elif args.what == "deny":
        route = "iam/deny"
        body = {"actions": args.actions, "principal": args.principal}
    elif args.what == "credentials":
        body = {"lifetime": args.lifetime}
    elif args.what == "clear":
        for route in ("faults", "task-faults", "run-failures", "iam/deny", "gateway-faults", "credentials"):
            _call(endpoint, "DELETE", route, None)
        print("cleared API faults, task faults, run failures, gateway faults, IAM denials and credential lifetimes")
        return 0
    elif args.what == "schedule-fire":
        route = "schedules/fire"
        body = {"name": args.name, "group": args.group}
    elif args.what in ("health", "hosts", "faults", "sessions", "schedules"):
        method, body = "GET", None
    print(json.dumps(_call(endpoint, method, route, body), indent=2))
    return 0


def _call(endpoint: str, method: str, route: str, body):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{endpoint.rstrip('/')}/_sandbox/{route}", data=data, method=method)
    request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as err:
        sys.exit(f"ctl: {err.code}: {err.read().decode()}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="jumpsandbox", description="The local AWS sandbox for jump.")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="run the sandbox in the foreground (Ctrl-C stops it)")
    start.add_argument("--env-file", help="also write the KEY=VALUE environment to this file")
    start.add_argument("--port", type=int, default=0, help="loopback port (default: a free one)")
    start.add_argument(
        "--step", type=float, default=float(os.environ.get("JUMP_SANDBOX_STEP", "1.0")),
        help="seconds each task lifecycle step takes (default 1.0, or $JUMP_SANDBOX_STEP)",
    )
    start.add_argument(
        "--jumphost-image", default=os.environ.get("JUMP_SANDBOX_JUMPHOST_IMAGE") or None, metavar="TAG",
        help="run tasks whose image is jump's jumphost as real containers of this locally built image "
        "(dockerfiles/jumphost/build --offline --tag TAG); default $JUMP_SANDBOX_JUMPHOST_IMAGE, else the "
        "entrypoint runs on the host",
    )
    start.add_argument(
        "--stop-on-eof", action="store_true",
        help="also stop when standard input closes (for test harnesses: the sandbox ends with its parent)",
    )
    sub.add_parser("clean", help="remove namespaces, links and processes left by dead sandboxes")

    c = sub.add_parser("ctl", help="control a running sandbox (faults, timing, IAM denials)")
    c.add_argument("--endpoint", help="sandbox URL (default: $AWS_ENDPOINT_URL)")
    what = c.add_subparsers(dest="what", required=True)
    f = what.add_parser("fault", help="make the next COUNT calls of ACTION fail")
    f.add_argument("action", help="API action, e.g. RunTask")
    f.add_argument("--service", help="only for this service (ecs, ec2, logs, sts, iam, ...)")
    f.add_argument("--count", type=int, default=1)
    f.add_argument("--kind", default="throttle", choices=["throttle", "access-denied", "server-error", "hang"],
                   help="hang: no answer for --seconds, then a server error")
    f.add_argument("--seconds", type=float, default=60.0, help="hang: how long the call goes unanswered")
    t = what.add_parser("task-fault", help="make the next COUNT tasks fail to start or crash")
    t.add_argument("kind", choices=["pull-error", "crash", "logger-error", "wrong-host-key", "extra-host-key", "backdated-host-key"])
    t.add_argument("--count", type=int, default=1)
    t.add_argument("--image", help="only tasks whose image contains this")
    t.add_argument("--after", type=float, default=1.0, help="crash: seconds after RUNNING")
    t.add_argument("--exit-code", type=int, default=1, help="crash: the container's exit code")
    a = what.add_parser("task-age", help="make a task look SECONDS older (its createdAt and start times)")
    a.add_argument("task", help="task ARN")
    a.add_argument("seconds", type=float)
    r = what.add_parser("run-failure", help="make the next COUNT RunTask calls place no task (failures)")
    r.add_argument("kind", choices=["capacity", "eni"])
    r.add_argument("--count", type=int, default=1)
    r.add_argument("--image", help="only RunTask calls whose first container's image contains this")
    i = what.add_parser("image", help="add an image tasks can run: what its ENTRYPOINT and CMD are")
    i.add_argument("name", help="image reference; without a tag, every tag of the repository")
    i.add_argument("--entrypoint", default="[]", help='JSON list, e.g. \'["/bin/sh", "-c"]\'')
    i.add_argument("--cmd", default="[]", help='JSON list, e.g. \'["sleep", "600"]\'')
    what.add_parser("images", help="list the images tests added")
    g = what.add_parser("gateway-fault", help="faults for new exec and port-forwarding sessions")
    g.add_argument("--drop", type=float, help="probability that a message is lost (then retransmitted)")
    g.add_argument("--duplicate", type=float, help="probability that a message is sent twice")
    g.add_argument("--delay", type=float, help="probability that a message is held back (reordering)")
    g.add_argument("--delay-ms", type=int, help="how long a held-back message waits (default 50)")
    g.add_argument("--kill-after", type=float,
                   help="this many seconds into a session, abort its connection and terminate it (no resume)")
    g.add_argument("--recycle-every", type=float, metavar="SECONDS",
                   help="close each connection of a session with code 1000 after this long (the session lives on)")
    g.add_argument("--break-every", type=float, metavar="SECONDS",
                   help="abort each connection of a session without a close frame after this long")
    g.add_argument("--stall-every", type=float, metavar="SECONDS",
                   help="after this long, stop reading, writing and answering pings on each connection of a "
                        "session, without closing it")
    g.add_argument("--idle-close", type=float, metavar="SECONDS",
                   help="end a session that has had no input from its client for this long, with the service's "
                        "channel_closed message (its idle session timeout; it cannot be resumed)")
    g.add_argument("--seed", type=int, help="random seed (default 1)")
    tm = what.add_parser("timing", help="change lifecycle delays (seconds)")
    tm.add_argument("--step", type=float, help="each task lifecycle step")
    tm.add_argument("--stop-grace", type=float, help="SIGTERM to SIGKILL on StopTask")
    tm.add_argument("--agent-connect", type=float, help="exec agent RUNNING to sessions accepted")
    tm.add_argument("--iam-propagation", type=float, help="CreateRole to the role being assumable")
    d = what.add_parser("deny", help="make SimulatePrincipalPolicy deny these actions")
    d.add_argument("actions", nargs="+")
    d.add_argument("--principal", help="only for principals whose ARN contains this")
    cr = what.add_parser("credentials", help="how long STS's temporary credentials last (compressed time)")
    cr.add_argument("--lifetime", type=float, metavar="SECONDS",
                    help="credentials issued from now on expire this long after issue, and say so in their "
                         "Expiration (omit: what the caller asked for, as in AWS)")
    what.add_parser("clear", help="remove all faults and denials")
    what.add_parser("health", help="show the sandbox's identity")
    what.add_parser("hosts", help="list task hosts")
    what.add_parser("sessions", help="list sessions: status and how many connections each has had")
    what.add_parser("faults", help="list injected API faults not yet hit")
    sf = what.add_parser("schedule-fire", help="invoke an EventBridge Scheduler schedule's target now, as when due")
    sf.add_argument("name")
    sf.add_argument("--group", default="default")
    what.add_parser("schedules", help="list schedule invocations: the task each started, or why none")

    args = parser.parse_args()
    if args.command == "ctl":
        return ctl(args)
    from . import server

    if args.command == "start":
        server.start(args.port, args.env_file, args.step, args.stop_on_eof, args.jumphost_image)
    else:
        server.clean()
    return 0


if __name__ == "__main__":
    sys.exit(main())
