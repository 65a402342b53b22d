"""`ray job submit` entry point: `farm tune` on the cluster the job runs in (RAY_ADDRESS is set by
Ray).

    ray job submit --address http://HEAD:8265 --runtime-env ray_jobs/runtime_env.yaml -- \\
        python ray_jobs/tune.py ARGS...      # the same ARGS as `farm tune`
"""

import sys

from farm.cli import main

if __name__ == "__main__":
    sys.exit(main(["tune", *sys.argv[1:]]))
