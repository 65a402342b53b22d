"""`ray job submit` entry point: `farm make-challenge` on the cluster the job runs in (RAY_ADDRESS
is set by Ray).

    ray job submit --address http://HEAD:8265 --runtime-env ray_jobs/runtime_env.yaml -- \\
        python ray_jobs/make_challenge.py ARGS...      # the same ARGS as `farm make-challenge`
"""

import sys

from farm.cli import main

if __name__ == "__main__":
    sys.exit(main(["make-challenge", *sys.argv[1:]]))
