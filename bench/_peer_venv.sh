# Sourced by bench/install_*.sh: one peer tool in its own venv .venv-NAME at the repo root,
# so the peer's dependencies stay out of the project's venv.
#
#   peer_venv NAME CHECK SHOW PACKAGE...
#
# When .venv-NAME's Python fails CHECK (Python code), create the venv if it is missing and
# pip install PACKAGE...; then run SHOW (Python code that prints the version). Idempotent.
# $PYTHON is the interpreter the venv is made with (default python3).
#
#   pinned PACKAGE VERSION
#
# prints PACKAGE==VERSION, or PACKAGE alone when VERSION is "latest".

peer_venv() {
    local name="$1" check="$2" show="$3" root venv
    shift 3
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    venv="$root/.venv-$name"
    if ! "$venv/bin/python" -c "$check" >/dev/null 2>&1; then
        [ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
        "$venv/bin/pip" install -q --disable-pip-version-check "$@"
    fi
    "$venv/bin/python" -c "$show"
}

pinned() {
    if [ "$2" = latest ]; then echo "$1"; else echo "$1==$2"; fi
}
