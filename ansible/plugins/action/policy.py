# -*- coding: utf-8 -*-

# Copyright (c) dockwall contributors
# MIT License (see https://opensource.org/licenses/MIT)

"""Action plugin of dockwall.firewall.policy: confirmation over a NEW connection.

Without ``confirm`` (and always in check mode) the module runs once, as usual.

With ``confirm: N``:

1. the module runs ``dockwall apply POLICY --confirm N --no-wait --json``: dockwall loads the
   rules, starts its own rollback timer on the host (a separate process that outlives the
   connection) and returns the pending apply's token;
2. the connection is reset (``self._connection.reset()``: with ssh, the ControlPersist master is
   stopped), so that what follows has to open a new connection through the new rules;
3. the module runs again over that new connection, with ``confirm_token``:
   ``dockwall confirm --token TOKEN --json``.

When the host cannot be reached again before the deadline, nothing more is sent: the host puts
back the rules from before on its own after N seconds, and the task fails saying so. This is the
pattern of community.general.iptables_state, with dockwall's own rollback timer on the host.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible.errors import AnsibleActionFail, AnsibleConnectionFailure
from ansible.module_utils.six import string_types
from ansible.plugins.action import ActionBase
from ansible.utils.display import Display

display = Display()

MODULE = 'dockwall.firewall.policy'


class ActionModule(ActionBase):

    _VALID_ARGS = frozenset(('src', 'content', 'docker', 'facts', 'confirm', 'force', 'format', 'executable', 'state_dir', 'confirm_token'))

    def _run_module(self, args, task_vars):
        result = self._execute_module(module_name=MODULE, module_args=args, task_vars=task_vars)
        self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _confirm_once(self, args, task_vars):
        """One try at the confirm phase over a new connection: (result, connection_problem)."""
        try:
            self._connection.reset()
        except Exception as e:  # a connection plugin without reset, or one that fails to
            display.vvv('dockwall: connection reset failed: %s' % e)
        self._connection._shell.tmpdir = None
        try:
            res = self._run_module(args, task_vars)
        except AnsibleConnectionFailure as e:
            return {'failed': True, 'msg': str(e)}, True
        if res.get('unreachable'):
            return res, True
        if res.get('failed') and 'outcome' not in res and 'confirmed' not in res:
            # the module did not run to its end (no JSON from it: MODULE FAILURE, an interpreter
            # that cannot be started over the new connection...)
            return res, True
        return res, False

    def run(self, tmp=None, task_vars=None):
        self._supports_check_mode = True
        self._supports_async = False
        result = super(ActionModule, self).run(tmp, task_vars)
        del tmp

        args = dict(self._task.args)
        confirm = args.get('confirm')
        if self._task.async_val:
            raise AnsibleActionFail('dockwall.firewall.policy does not support async; use confirm: SECONDS')

        if confirm in (None, '') or self._play_context.check_mode or args.get('confirm_token'):
            result.update(self._run_module(args, task_vars))
            return result

        try:
            seconds = int(confirm)
        except (TypeError, ValueError):
            raise AnsibleActionFail('confirm must be a number of seconds, not %r' % (confirm,))

        # Phase 1: load, with dockwall's rollback timer running on the host.
        started = time.time()
        first = self._run_module(args, task_vars)
        if first.get('failed') or not isinstance(first.get('pending'), dict) or not first['pending'].get('token'):
            if not first.get('failed') and not first.get('changed'):
                # nothing to change: nothing waits, nothing to confirm
                result.update(first)
                return result
            if not first.get('failed'):
                first['failed'] = True
                first['msg'] = 'dockwall apply --confirm --no-wait returned no pending token'
            result.update(first)
            return result

        pending = first['pending']
        token = pending['token']
        deadline = started + float(pending.get('seconds') or seconds)
        confirm_args = {'confirm_token': token}
        for k in ('executable', 'state_dir'):
            if args.get(k) is not None:
                confirm_args[k] = args[k]

        # Phase 2: confirm over a new connection, retrying connection failures until the deadline.
        tries = 0
        while True:
            tries += 1
            second, connection_problem = self._confirm_once(confirm_args, task_vars)
            # a try takes a connection's timeout or so: none is started that could only end
            # after the host's own rollback (the confirm would then say that it rolled back)
            if not connection_problem or time.time() + 2 >= deadline:
                break
            display.vvv('dockwall: confirm try %d failed: %s' % (tries, second.get('msg')))
            time.sleep(1)

        result.update(first)
        result['pending'] = pending
        result['confirm'] = {'token': token, 'tries': tries}
        if connection_problem:
            reason = second.get('msg') or 'unknown error'
            if second.get('module_stderr'):
                reason = '%s: %s' % (reason, second['module_stderr'].strip())
            result['failed'] = True
            result['changed'] = True
            result['rolled_back'] = 'by the host at its deadline'
            result['msg'] = ('the new rules were loaded, but the host could not be reached again over a new connection to '
                             'confirm them (%s); the host puts back the rules from before on its own after %s s (deadline %s)'
                             % (reason, pending.get('seconds', seconds), pending.get('deadline')))
            return result
        if second.get('failed'):
            result['failed'] = True
            result['changed'] = False
            result['outcome'] = second.get('outcome')
            msg = second.get('msg')
            result['msg'] = 'the new rules were loaded but not confirmed: %s' % (msg if isinstance(msg, string_types) else second)
            return result
        result['changed'] = True
        result['confirmed'] = True
        result['outcome'] = second.get('outcome')
        result['msg'] = second.get('msg', 'confirmed')
        return result
