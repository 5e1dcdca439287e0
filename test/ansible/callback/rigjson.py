# -*- coding: utf-8 -*-
# A stdout callback for test/ansible/fleet.test.ts: ansible-core 2.14 has no 'json' callback
# (that one is in ansible.posix), so this prints the same shape at the end of the run:
# {"plays": [{"play": {"name"}, "tasks": [{"task": {"name"}, "hosts": {HOST: RESULT}}]}],
#  "stats": {HOST: {"ok", "changed", "failures", "unreachable", "skipped"}}}
from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = '''
    name: rigjson
    type: stdout
    short_description: the play's results as one JSON object
    description: the plays, tasks and per-host results, and the stats, as JSON on stdout
'''

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'rigjson'

    def __init__(self, display=None):
        super(CallbackModule, self).__init__(display)
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'play': {'name': play.get_name()}, 'tasks': []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.plays[-1]['tasks'].append({'task': {'name': task.get_name()}, 'hosts': {}})

    def v2_playbook_on_handler_task_start(self, task):
        self.v2_playbook_on_task_start(task, False)

    def _record(self, result, **extra):
        res = dict(result._result)
        res.update(extra)
        self.plays[-1]['tasks'][-1]['hosts'][result._host.get_name()] = res

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        out = {'plays': self.plays, 'stats': dict((h, stats.summarize(h)) for h in hosts)}
        self._display.display(json.dumps(out, default=str))
