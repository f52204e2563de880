# Sourced by scripts/test and scripts/demo: make or reuse the virtual
# environment $VENV for the interpreter $PYTHON, then put it first on PATH.
# A venv made by another interpreter is made anew.

PYTHON=${PYTHON:-python3}
VENV=${VENV:-.venv}

if ! command -v "$PYTHON" >/dev/null 2>&1; then
    echo "No Python interpreter '$PYTHON'" >&2
    exit 1
fi
_lcp_ident='import sys; print(sys.version, sys.base_prefix)'
_lcp_want=$("$PYTHON" -c "$_lcp_ident")
if [ -x "$VENV/bin/python" ] && [ "$("$VENV/bin/python" -c "$_lcp_ident" 2>/dev/null)" = "$_lcp_want" ]; then
    echo "Using virtual environment $VENV ($("$VENV/bin/python" --version))"
else
    echo "Creating virtual environment $VENV with $PYTHON ($("$PYTHON" --version))"
    rm -rf "$VENV"
    "$PYTHON" -m venv "$VENV"
fi
PATH="$(cd "$VENV" && pwd)/bin:$PATH"
export PATH
unset _lcp_ident _lcp_want
