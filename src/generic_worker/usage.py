"""The docopt usage text, shaped like the seed's, with generated config and exit-code tables."""

from __future__ import annotations

import textwrap

from generic_worker import __version__
from generic_worker.config import COMPAT_KEYS, config_keys
from generic_worker.exitcodes import EXIT_CODE_TABLE

VERSION_LINE = f"generic-worker {__version__}"

_HEAD = """\
generic-worker (Python) - a Taskcluster worker, drop-in compatible with generic-worker.

It claims tasks from a Taskcluster queue, runs their commands, streams their live log,
uploads their artifacts and reports their results.

  Usage:
    generic-worker run                      [--config CONFIG-FILE]
                                            [--configure-for-aws]
                                            [--with-worker-runner]
    generic-worker install service          [--nssm NSSM-EXE]
                                            [--service-name SERVICE-NAME]
                                            [--config CONFIG-FILE]
    generic-worker exec TASK-FILE           [--config CONFIG-FILE]
                                            [--artifacts DIR] [--keep]
    generic-worker show-payload-schema      [--config CONFIG-FILE]
    generic-worker new-openpgp-keypair      --file PRIVATE-KEY-FILE
    generic-worker new-ed25519-keypair      --file ED25519-PRIVATE-KEY-FILE
    generic-worker grant-winsta-access      --sid SID
    generic-worker --help
    generic-worker --version

  Targets:
    run                                     Runs the generic-worker until it has run
                                            numberOfTasksToRun tasks, idles out, or is
                                            stopped (SIGINT finishes the running task
                                            first; SIGTERM aborts it as worker-shutdown).
    install service                         Installs generic-worker as a service: a
                                            systemd unit on Linux that runs
                                            `generic-worker run --config CONFIG-FILE`.
                                            Not supported on other platforms.
    exec                                    Runs the one task in TASK-FILE (a task
                                            definition or a bare payload, YAML or JSON;
                                            - reads stdin) on this machine against an
                                            embedded tc-local: streams its live log to
                                            stdout, copies its artifacts to DIR, prints
                                            a summary. Exits 0 completed, 1 failed,
                                            2 exception, 64 bad task file, 73 bad
                                            config. Ctrl-C aborts it (worker-shutdown).
    show-payload-schema                     Prints the JSON schema of task payloads for the
                                            engine the config selects (insecure when
                                            runTasksAsCurrentUser is true or unset).
    new-openpgp-keypair                     Writes a new RSA-4096 OpenPGP private key to
                                            PRIVATE-KEY-FILE (mode 0400) and prints the
                                            public key.
    new-ed25519-keypair                     Writes a new ed25519 private key (base64 seed)
                                            to ED25519-PRIVATE-KEY-FILE (mode 0600) and
                                            prints the base64 public key.
    grant-winsta-access                     Windows only; elsewhere it exits 74.

  Options:
    --config CONFIG-FILE                    JSON configuration file to use. With `install
                                            service`, the config the service will use.
                                            [default: generic-worker.config]
    --artifacts DIR                         exec: where the task's artifacts are copied,
                                            names as paths. [default: artifacts]
    --keep                                  exec: keep tc-local's data directory and
                                            print how to serve it with `tc-local serve`.
    --configure-for-aws                     Read worker settings from the EC2 metadata
                                            service (metadataBaseURL) before the file.
    --with-worker-runner                    Run under Taskcluster worker-runner, speaking
                                            its protocol on stdin/stdout.
    --nssm NSSM-EXE                         Windows only; ignored elsewhere.
                                            [default: C:\\nssm-2.24\\win64\\nssm.exe]
    --service-name SERVICE-NAME             Name of the service. On Linux the systemd unit
                                            is this name, lower-cased, with runs of other
                                            characters than a-z 0-9 . _ - turned into -.
                                            [default: Generic Worker]
    --file PRIVATE-KEY-FILE                 File to write the private key to.
    --sid SID                               Windows security identifier.
    --help                                  Display this help text.
    --version                               The release version of generic-worker.
"""


def _config_section() -> str:
    lines = [
        "  Configuring the generic worker:",
        "",
        "    The config file is a JSON object. Keys are matched case-insensitively; unknown keys",
        "    and wrong types are errors (all are listed, exit 73). The file is never rewritten.",
        "    Required: accessToken, clientId, workerId, workerType, and rootURL (or the legacy",
        "    queueBaseURL); publicIP when enableLiveLog is true; livelogSecret when subdomain is",
        "    set. Secrets (accessToken, certificate, livelogSecret) never appear in logs.",
        "",
        f"    {'Key':<34}{'Default':<28}Meaning",
    ]
    for info in config_keys():
        lines.extend(_row(info.key, info.default_text(), info.doc))
    lines += [
        "",
        "    Accepted for compatibility with today's upstream generic-worker, with no effect:",
    ]
    names = sorted(COMPAT_KEYS, key=str.lower)
    lines.extend("      " + line for line in textwrap.wrap(", ".join(names), 90))
    return "\n".join(lines) + "\n"


def _row(key: str, default: str, doc: str) -> list[str]:
    wrapped = textwrap.wrap(doc, 48) or [""]
    if len(default) > 26:
        first = [f"    {key:<34}{default}"]
        return first + [f"    {'':<62}{w}" for w in wrapped]
    rows = [f"    {key:<34}{default:<28}{wrapped[0]}"]
    rows += [f"    {'':<62}{w}" for w in wrapped[1:]]
    return rows


def _exit_code_section() -> str:
    lines = ["  Exit Codes:", ""]
    lines += [f"    {int(code):>2}   {text}" for code, text in EXIT_CODE_TABLE]
    return "\n".join(lines) + "\n"


def usage_text() -> str:
    """The full `--help` text (the docopt usage string)."""
    return f"{_HEAD}\n{_config_section()}\n{_exit_code_section()}"
