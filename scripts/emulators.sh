#!/usr/bin/env bash
# The AWS emulators the aws backend's tests run against, each in its own virtual environment
# under .venv/ (ignored). Versions are pinned: newer LocalStack releases need an account token or
# Python >= 3.12, newer moto crashes on ECS RunTask with awsvpc (see shared REFERENCE.md).
# Usage: scripts/emulators.sh install | start | stop | status
#   start: LocalStack on $LOCALSTACK_PORT (4566) and moto on $MOTO_PORT (5000), logs and pids
#   under .venv/emulators/run/. Tests start their own on free ports; this is for manual use.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venvs="$root/.venv/emulators"
ls_venv="$venvs/localstack"
moto_venv="$venvs/moto"
# Not an emulator: AWS's Python runtime interface client, which the Lambda emulator's
# bring-your-own tests copy into a function's code (harness/local/tests/byo.rs).
ric_venv="$venvs/awslambdaric"
run_dir="$venvs/run"
python="${PYTHON:-python3}"

localstack_pins=("localstack-core[runtime]==4.13.1" "cryptography==43.0.3" "pyopenssl==24.2.1" "cbor2<5.7"
  "service_identity<24.2")
moto_pins=("moto[server]==4.2.14")
# 3.1.1 has a manylinux wheel for cp311 (no compiler needed).
ric_pins=("awslambdaric==3.1.1")

# Installs $2.. into venv $1 unless its stamp file says these exact pins are already there.
install_venv() {
  local venv="$1"; shift
  local stamp="$venv/.isobench-pins"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ]; then
    return 0
  fi
  echo "emulators: installing $* into ${venv#"$root"/}" >&2
  "$python" -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "$@"
  echo "$*" > "$stamp"
}

wait_http() {
  local url="$1" name="$2"
  for _ in $(seq 1 120); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.5
  done
  echo "emulators: $name did not answer $url within 60s (log in $run_dir)" >&2
  return 1
}

case "${1:-}" in
  install)
    install_venv "$ls_venv" "${localstack_pins[@]}"
    install_venv "$moto_venv" "${moto_pins[@]}"
    install_venv "$ric_venv" "${ric_pins[@]}"
    ;;
  start)
    mkdir -p "$run_dir"
    ls_port="${LOCALSTACK_PORT:-4566}"
    moto_port="${MOTO_PORT:-5000}"
    # Host mode with its files under run/ (not /var/lib/localstack, which it picks when it
    # believes it is in a container).
    GATEWAY_LISTEN="127.0.0.1:$ls_port" SERVICES=ec2,iam,sts,s3,lambda OVERRIDE_IN_DOCKER=0 \
      FILESYSTEM_ROOT="$run_dir/localstack-fs" setsid "$ls_venv/bin/python" -m localstack.runtime.main >"$run_dir/localstack.log" 2>&1 &
    echo $! >"$run_dir/localstack.pid"
    setsid "$moto_venv/bin/moto_server" -H 127.0.0.1 -p "$moto_port" >"$run_dir/moto.log" 2>&1 &
    echo $! >"$run_dir/moto.pid"
    wait_http "http://127.0.0.1:$ls_port/_localstack/health" LocalStack
    wait_http "http://127.0.0.1:$moto_port/moto-api/" moto
    echo "AWS_ENDPOINT_URL=http://127.0.0.1:$ls_port AWS_ENDPOINT_URL_ECS=http://127.0.0.1:$moto_port"
    ;;
  stop)
    for name in localstack moto; do
      pid_file="$run_dir/$name.pid"
      [ -f "$pid_file" ] || continue
      # setsid made each its own process group: end the group (the server and its children).
      kill -TERM -- "-$(cat "$pid_file")" 2>/dev/null || true
      rm -f "$pid_file"
    done
    ;;
  status)
    [ -f "$ls_venv/.isobench-pins" ] && echo "localstack: $(cat "$ls_venv/.isobench-pins")" || echo "localstack: not installed"
    [ -f "$moto_venv/.isobench-pins" ] && echo "moto: $(cat "$moto_venv/.isobench-pins")" || echo "moto: not installed"
    [ -f "$ric_venv/.isobench-pins" ] && echo "awslambdaric: $(cat "$ric_venv/.isobench-pins")" || echo "awslambdaric: not installed"
    ;;
  *)
    echo "usage: scripts/emulators.sh install|start|stop|status" >&2
    exit 2
    ;;
esac
