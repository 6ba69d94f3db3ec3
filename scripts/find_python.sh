#!/bin/sh
# Prints the path of a Python 3.12 interpreter (the Lambda runtime's version).
# Tries python3.12 on PATH, then pyenv's installs, then common locations, and
# checks each one really runs 3.12 (a pyenv shim alone may not).
is_312() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 12))' >/dev/null 2>&1; }
for candidate in \
    "$(command -v python3.12 2>/dev/null)" \
    "${PYENV_ROOT:-$HOME/.pyenv}"/versions/3.12*/bin/python3.12 \
    /usr/local/bin/python3.12 /usr/bin/python3.12; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && is_312 "$candidate"; then
        echo "$candidate"
        exit 0
    fi
done
echo "no Python 3.12 found: install it (for example 'pyenv install 3.12') and retry" >&2
exit 1
