"""Learning from history: analytics and recommendations over the executor's runs.

The computations (statistics, analytics, tier recommendations, suggested
answers) are pure functions over compact facts of finished runs, so they are
tested without servers. `service.Learner` connects them to the run store and
the memory service.
"""
