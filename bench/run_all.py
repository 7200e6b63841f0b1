"""Every benchmark with its full settings, one after the other (`make bench`; about 30 minutes on 2 cores).

Each writes its table to bench/results/<name>.md (and its raw numbers to <name>.json) and prints it.
Run on a quiet machine: every number here is a time, and other work on the same cores shows up in it.
"""

import browser
import durable
import engine
import sanitize
import server

if __name__ == "__main__":
    paths = [browser.main([]), engine.main([]), server.main([]), sanitize.main([]), durable.main([])]
    print("\nResults written to:", *paths, sep="\n  ")
