"""``va-launch keys DIR``: make a Curve key pair for one machine and print its public key.

Writes ``DIR/NAME.key`` (public, share it) and ``DIR/NAME.key_secret``
(mode 0600, keep it on that machine or in a Kubernetes Secret); existing
files are never overwritten. The public key goes into the other side's
``[[worker]] public_key``, ``[transport] trust`` or ``va-launch worker
--trust``.
"""

from __future__ import annotations

import sys

import click

from va_actors.runtime.transport import TransportError, create_keypair, load_keypair

__all__ = ["keys"]


@click.command("keys")
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--name", default="va", show_default=True,
              help="File name of the pair: NAME.key and NAME.key_secret.")
def keys(directory: str, name: str) -> None:
    """Make a Curve key pair in DIRECTORY and print the public key."""
    try:
        public, secret = create_keypair(directory, name)
        pair = load_keypair(secret)
    except TransportError as exc:
        click.echo(f"va-launch keys: {exc}", err=True)
        sys.exit(1)
    click.echo(f"public key ({public}): ", err=True, nl=False)
    click.echo(pair.public)
    click.echo(f"secret key in {secret} (mode 0600): keep it on this machine", err=True)
