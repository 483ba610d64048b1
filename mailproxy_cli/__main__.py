"""``python -m mailproxy_cli``: the ``mail-proxy`` command."""

from mailproxy_cli import main

main()
