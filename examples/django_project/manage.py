#!/usr/bin/env python
"""The example shop's command line: ``python manage.py migrate``, ``runserver``,
``test``, and ``set_price`` (a write from another process)."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
