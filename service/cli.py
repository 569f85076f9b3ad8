"""Admin commands: ``python -m service.cli {migrate,create-key,revoke-key}``."""

from __future__ import annotations

import argparse
import sys

from . import auth, db
from .config import Settings
from .setup import bootstrap_keys, migrate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m service.cli", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="alembic upgrade head, then register BOOTSTRAP_API_KEY")
    create = sub.add_parser("create-key", help="make an API key and print it (once)")
    create.add_argument("--tenant", default=auth.DEFAULT_TENANT)
    create.add_argument("--name", default="")
    revoke = sub.add_parser("revoke-key", help="revoke a key (the key or its 10-char prefix)")
    revoke.add_argument("key")
    args = parser.parse_args(argv)

    settings = Settings.from_env()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if args.command == "migrate":
        migrate(settings.database_url)
        bootstrap_keys(settings)
        print("database is at the newest migration")
        return 0
    db.configure(settings.database_url)
    with db.session_scope() as s:
        if args.command == "create-key":
            print(auth.create_key(s, args.tenant, args.name))
            return 0
        count = auth.revoke_key(s, args.key)
    print(f"revoked {count} key(s)", file=sys.stderr)
    return 0 if count else 1


if __name__ == "__main__":
    sys.exit(main())
