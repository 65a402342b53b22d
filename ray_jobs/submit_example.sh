#!/usr/bin/env bash
# Submit the three stages of a run to a Ray cluster's job server (ADDRESS: http://<head>:8265).
# With token authentication (RAY_AUTH_MODE=token), `ray job submit` reads the token from ~/.ray/auth_token.
set -euo pipefail
ADDRESS=${ADDRESS:-http://127.0.0.1:8265}
ray job submit --address "$ADDRESS" --runtime-env ray_jobs/runtime_env.yaml -- \
    python ray_jobs/make_challenge.py --config mini --out /tmp/farm-mini
ray job submit --address "$ADDRESS" --runtime-env ray_jobs/runtime_env.yaml -- \
    python ray_jobs/attack.py --challenge /tmp/farm-mini/challenge --answers /tmp/farm-mini/answers \
    --config attack-mini --store /tmp/farm-mini/store --out /tmp/farm-mini-attack
ray job submit --address "$ADDRESS" --runtime-env ray_jobs/runtime_env.yaml -- \
    python ray_jobs/tune.py --challenge /tmp/farm-mini/challenge --config tune-mini \
    --store /tmp/farm-mini/store --out /tmp/farm-mini-tune
