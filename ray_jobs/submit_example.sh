#!/usr/bin/env bash
# Submit the three stages of a run to a Ray cluster's job server, from the repository root of the
# machine you submit from (README.md, "Run on a Ray cluster", gives the whole sequence).
#   ADDRESS  the job server, http://<head>:8265 (`ray dashboard ray_jobs/cluster.yaml` forwards it
#            to http://127.0.0.1:8265, the default)
#   SHARED   a folder every node mounts (cluster.yaml mounts it at /mnt/farm): the jobs' --out
#   STORE    the store every node reaches: $SHARED/store by default, or an fsspec URI (s3://...)
# The cluster runs with token authentication: `ray job submit` needs RAY_AUTH_MODE=token and reads
# the token from ~/.ray/auth_token (or $RAY_AUTH_TOKEN), the one cluster.yaml copies to the nodes.
set -euo pipefail
cd "$(dirname "$0")/.."
export RAY_AUTH_MODE=token
ADDRESS=${ADDRESS:-http://127.0.0.1:8265}
SHARED=${SHARED:-/mnt/farm}
STORE=${STORE:-$SHARED/store}
submit() { ray job submit --address "$ADDRESS" --runtime-env ray_jobs/runtime_env.yaml -- "$@"; }
submit python ray_jobs/make_challenge.py --config mini --out "$SHARED/mini" --store "$STORE"
submit python ray_jobs/attack.py --challenge "$SHARED/mini/challenge" --answers "$SHARED/mini/answers" \
    --config attack-mini --store "$STORE" --out "$SHARED/mini-attack"
submit python ray_jobs/tune.py --challenge "$SHARED/mini/challenge" --config tune-mini \
    --store "$STORE" --out "$SHARED/mini-tune"
# Results: each job's summary is its log (`ray job logs --address "$ADDRESS" <submission id>`); the
# files are under $SHARED on any node, `ray rsync-down ray_jobs/cluster.yaml "$SHARED/mini-attack" .`
# copies them to this machine when it does not mount $SHARED.
