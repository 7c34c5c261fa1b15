"""Command line: argument parsing, logging, asyncio.run(app)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from mqttrelay import app
from mqttrelay.config import Config, ConfigError, load_config, policy_problems
from mqttrelay.ingest.nginx.conf import render_include, render_nginx_conf, settings_from_config
from mqttrelay.ingest.nginx.hook_secret import hook_secret_path, load_hook_secret
from mqttrelay.lib.redact import Redactor, escape_control

DEFAULT_CONFIG = Path("config.yaml")


class MaskingFormatter(logging.Formatter):
    """Masks stream keys and URL secrets in everything logged, tracebacks included,
    and escapes control characters in the message: text from outside (a hook's
    form, an MQTT topic) cannot forge a line of its own."""

    def __init__(self, fmt: str, redactor: Redactor) -> None:
        super().__init__(fmt)
        self._redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        safe = logging.makeLogRecord(record.__dict__)
        safe.msg, safe.args = escape_control(record.getMessage()), None
        # the service's redactor: secrets a reload added are masked from then on
        return self._redactor.mask(super().format(safe))


def setup_logging(level: str, redactor: Redactor) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        MaskingFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s", redactor)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per stat poll otherwise
    # two lines a minute for the state file's heartbeat, four at start: housekeeping
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


def _load(path: Path) -> Config | None:
    try:
        return load_config(path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{path}: {problem}", file=sys.stderr)
        return None


def cmd_check(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    problems = policy_problems(config)
    for problem in problems:
        print(f"{args.config}: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(
        f"{args.config}: OK ({len(config.streams)} stream(s), {len(config.schedules)} schedule(s))"
    )
    print(f"{args.config}: {obs_summary(config)}")
    return 0


def obs_summary(config: Config) -> str:
    """Where OBS publishes with this config, or that nothing here listens for it."""
    url = config.ingest.url
    server, _, stream = url.rpartition("/")
    key = f"{stream}?key=<ingest.publish_key>" if config.ingest.publish_key else stream
    if config.ingest.manage:
        return f"OBS publishes to {server} with stream key '{key}' (mqttrelay runs that nginx)"
    return (
        f"mqttrelay starts nothing that listens for OBS (ingest.manage: false): {url} must "
        "be an nginx-rtmp you run (mqttrelay nginx-conf prints its config), or set "
        "ingest.manage: true to have mqttrelay run it"
    )


def cmd_schema(_: argparse.Namespace) -> int:
    from .config.reference import render_schema

    print(render_schema(), end="")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    return _run(args.config, args.log_level)


def _run(path: Path, log_level: str) -> int:
    config = _load(path)
    if config is None:
        return 2
    # one redactor for the process: the log formatter and the service share it
    redactor = Redactor(config.secrets)
    setup_logging(log_level, redactor)
    try:
        asyncio.run(app.run(config, path, redactor))
    except app.StartupError as exc:
        print(f"mqttrelay: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_container(_: argparse.Namespace) -> int:
    from .container.launch import LaunchError, become_service_user, exec_service
    from .container.options import OptionsError
    from .container.start import prepare

    def say(line: str) -> None:
        print(f"mqttrelay container: {line}", file=sys.stderr, flush=True)

    try:
        # as root (the image's start): hands /data over and comes back here as its user
        become_service_user(os.environ, say)
        prepared = prepare(os.environ, say)
        # `mqttrelay run`, exec'd without the Supervisor's token (container/launch.py)
        exec_service(prepared, os.environ)
    except LaunchError as exc:
        say(str(exc))
        return 2
    except OptionsError as exc:
        for problem in exc.problems:
            say(problem)
        return 2
    except OSError as exc:
        say(f"cannot write the config: {exc.strerror or exc} ({exc.filename or ''})")
        return 2


def cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo  # imports the web stack only when needed

    redactor = Redactor()  # the service adds the demo config's secrets
    setup_logging(args.log_level, redactor)
    try:
        asyncio.run(run_demo(args.port, redactor))
    except app.StartupError as exc:
        print(f"mqttrelay demo: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_nginx_conf(args: argparse.Namespace) -> int:
    config = _load(args.config)
    if config is None:
        return 2
    try:
        hook_secret = load_hook_secret(config.ingest.hook_secret, config.state_file)
    except OSError as exc:
        kept = hook_secret_path(config.state_file)
        print(
            f"mqttrelay nginx-conf: cannot keep the hook secret in {kept}: "
            f"{exc.strerror or exc}; run this as the service's user, or set ingest.hook_secret",
            file=sys.stderr,
        )
        return 2
    settings = settings_from_config(
        config.ingest,
        config.api,
        args.prefix,
        hook_secret=hook_secret,
        run_as_root=args.user_root,
        push=config.streams if args.push else (),
        show_keys=args.show_keys,
    )
    print((render_include if args.include else render_nginx_conf)(settings), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mqttrelay",
        description="Switch live-stream destinations on and off while live.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the service in the foreground")
    run.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    run.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    run.set_defaults(func=cmd_run)
    check = sub.add_parser("check", help="validate a config file")
    check.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    check.set_defaults(func=cmd_check)
    schema = sub.add_parser(
        "schema", help="print config.yaml's JSON Schema, for editors (docs/config.md)"
    )
    schema.set_defaults(func=cmd_schema)
    demo = sub.add_parser("demo", help="run everything locally: ingest, test source, platforms")
    demo.add_argument("--port", type=int, default=8088, help="web page port (if free)")
    demo.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    demo.set_defaults(func=cmd_demo)
    container = sub.add_parser(
        "container",
        help="the image's start: config.yaml from the add-on's options (or the "
        "environment) and the Supervisor's MQTT service, then run",
    )
    container.set_defaults(func=cmd_container)
    conf = sub.add_parser("nginx-conf", help="print the nginx-rtmp config of the ingest")
    conf.add_argument("--config", type=Path, default=DEFAULT_CONFIG)
    conf.add_argument("--prefix", default="/var/lib/mqttrelay/nginx", help="pid, logs, temp")
    conf.add_argument("--push", action="store_true", help="add nginx push lines (old mode)")
    conf.add_argument("--show-keys", action="store_true", help="print stream keys in push lines")
    conf.add_argument("--user-root", action="store_true", help="add 'user root;'")
    conf.add_argument(
        "--include",
        action="store_true",
        help="print only the rtmp {} block, to include in an nginx you already run",
    )
    conf.set_defaults(func=cmd_nginx_conf)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        result: int = args.func(args)
    except KeyboardInterrupt:
        return 130
    return result


if __name__ == "__main__":
    sys.exit(main())
