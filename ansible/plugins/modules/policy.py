#!/usr/bin/python
# -*- coding: utf-8 -*-

# Copyright (c) dockwall contributors
# MIT License (see https://opensource.org/licenses/MIT)

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
---
module: policy
short_description: Apply a dockwall firewall policy to a Docker host
version_added: "0.1.0"
description:
  - Compiles a dockwall policy on the host and loads its iptables and ip6tables rules with
    C(dockwall apply), keeping other tools' chains (fail2ban, CrowdSec...).
  - Whether the task changed something is dockwall's own comparison of the compiled rules with
    the rules loaded in the kernel, never a comparison of file texts.
  - In check mode it runs C(dockwall apply --check), where the policy is compiled and compared with the
    loaded rules, the lockout guard runs on C(SSH_CONNECTION), the reachability delta is computed,
    and nothing is loaded or written. The task fails where a real apply would be refused.
  - With O(confirm), the rules are kept only if confirmed over a new connection within that many
    seconds; the host rolls back on its own otherwise (see the action plugin notes).
options:
  src:
    description:
      - Path of the policy file on the host.
      - Mutually exclusive with O(content). One of O(src), O(content) is required unless
        O(confirm_token) is set.
    type: path
  content:
    description:
      - The policy's text. It is written to a temporary file on the host, which is removed
        afterwards.
      - Mutually exclusive with O(src).
    type: str
  docker:
    description:
      - Read Docker's facts (networks, running containers, published ports) from the daemon
        (C(dockwall apply --docker)).
      - Mutually exclusive with O(facts).
    type: bool
    default: false
  facts:
    description:
      - Path on the host of a facts file, as C(dockwall facts) writes it (C(dockwall apply --facts)).
      - Mutually exclusive with O(docker).
    type: path
  confirm:
    description:
      - Keep the new rules only if they are confirmed within this many seconds.
      - The action plugin loads the rules (C(dockwall apply --confirm N --no-wait)), which starts a
        rollback timer on the host, then opens a new connection to the host and confirms with
        C(dockwall confirm --token TOKEN). When the host cannot be reached again the host puts the
        rules from before back on its own after O(confirm) seconds, and the task fails saying so.
      - Ignored in check mode.
    type: int
  force:
    description:
      - Apply even if the lockout guard says the new rules would not accept the SSH session's next
        connection (C(dockwall apply --force)).
    type: bool
    default: false
  format:
    description:
      - C(iptables) loads the iptables rules (iptables-restore); C(nft) loads the C(--format nft)
        file with C(nft -f) in one transaction, for a host whose firewall is nftables
        (C(dockwall apply -f nft)).
    type: str
    choices: [iptables, nft]
    default: iptables
  executable:
    description:
      - The dockwall command on the host, a name looked up in C(PATH) or an absolute path.
    type: str
    default: dockwall
  state_dir:
    description:
      - dockwall's state directory, passed as the environment variable C(DOCKWALL_STATE_DIR).
      - dockwall's default is C(/var/lib/dockwall).
    type: path
  confirm_token:
    description:
      - Internal, set by the action plugin in its confirm phase. When set, no policy is applied; the
        module runs C(dockwall confirm --token CONFIRM_TOKEN) and fails when that apply no longer
        waits for confirmation.
      - Not meant to be set in a playbook.
    type: str
notes:
  - Needs dockwall with the JSON interface of C(apply --json) (version C(dockwall 1)) on the host.
  - The lockout guard reads C(SSH_CONNECTION) from the module's environment, which sshd sets for
    the connection Ansible uses; set it with the task's C(environment) to test another address.
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
author:
  - dockwall contributors
'''

EXAMPLES = r'''
- name: Apply the host's policy with the daemon's facts, confirmed over a new connection
  dockwall.firewall.policy:
    src: /etc/dockwall/host.dw
    docker: true
    confirm: 60

- name: Apply a policy given inline, with a facts file saved earlier
  dockwall.firewall.policy:
    content: "{{ lookup('ansible.builtin.template', 'host.dw.j2') }}"
    facts: /var/lib/dockwall/facts.json

- name: What would change, and who would reach what (run with --check --diff)
  dockwall.firewall.policy:
    src: /etc/dockwall/host.dw
    docker: true
  check_mode: true
  diff: true
  register: preview
'''

RETURN = r'''
changed:
  description: Whether the compiled rules differ from the rules loaded in the kernel (dockwall's
    comparison, other tools' chains and counters left out).
  returned: always
  type: bool
families:
  description: Per family (C(ipv4), C(ipv6)) whether its rules differ, and dockwall's rule diff
    (unified, C(-) loaded, C(+) compiled).
  returned: when dockwall compiled the policy
  type: dict
  sample: {"ipv4": {"changed": true, "diff": "--- live\n+++ compiled\n@@ filter DOCKER-USER @@\n+-A DOCKER-USER ..."}}
nft:
  description: With O(format=nft), the tables the file replaces and dockwall's diff of them (C(-) loaded,
    C(+) compiled); O(families) is then empty.
  returned: when dockwall compiled the policy with O(format=nft)
  type: dict
  sample: {"tables": ["inet dockwall"], "diff": "--- live: nft list table\n+++ compiled\n@@ inet dockwall chain input-ip @@\n..."}
diff:
  description: In diff mode, the per-family rule diffs concatenated with a header each, and the
    reachability delta, as C(prepared) text.
  returned: in diff mode, when dockwall compiled the policy
  type: dict
  sample: {"prepared": "# IPv4 rules\n+-A DOCKER-USER ..."}
reachability:
  description: The cells of the reachability matrix whose verdict the change would change (or did
    change), each with C(row), C(column), C(family), C(path), C(before), C(after), C(from) and C(probe).
  returned: when dockwall compiled the policy
  type: list
  elements: dict
pending:
  description: With O(confirm), the apply that waits for confirmation (C(token), C(deadline), C(seconds)).
  returned: when the rules were loaded with O(confirm)
  type: dict
outcome:
  description: dockwall's outcome of the apply or of the confirmation (C(how), C(ok), C(message)).
  returned: when dockwall reported one
  type: dict
kept:
  description: Other tools' chains that were kept, as C(ip filter f2b-sshd).
  returned: when dockwall compiled the policy
  type: list
  elements: str
diagnostics:
  description: dockwall's diagnostics (C(code), C(severity), C(message), C(file), C(line), C(column),
    C(help), C(notes)).
  returned: always
  type: list
  elements: dict
refused:
  description: Why dockwall refused (C(reason) one of lockout, pending, conflict, save, test, load,
    policy; C(message)).
  returned: on failure, when dockwall refused
  type: dict
stderr:
  description: dockwall's messages for humans.
  returned: always
  type: str
'''

import json
import os
import tempfile

from ansible.module_utils.basic import AnsibleModule


def format_diagnostic(d):
    where = d.get('file') or ''
    if d.get('line') is not None:
        where = '%s:%s:%s' % (where, d.get('line'), d.get('column') if d.get('column') is not None else 1)
    docker = d.get('docker')
    if not where and isinstance(docker, dict):
        where = '%s: %s %r' % (docker.get('source', ''), docker.get('kind', ''), docker.get('name', ''))
    text = '%s: %s: %s' % (where or 'dockwall', d.get('severity', 'error'), d.get('message', ''))
    if d.get('help'):
        text += ' (help: %s)' % d['help']
    return text


def error_lines(data):
    diags = data.get('diagnostics') or []
    return [format_diagnostic(d) for d in diags if d.get('severity') == 'error']


def prepared_diff(data):
    parts = []
    nft = data.get('nft') or {}
    if nft.get('diff'):
        parts.append('# nftables %s (- loaded, + %s)\n%s' % (', '.join(nft.get('tables') or []), data.get('policy', 'compiled'), nft['diff'].rstrip('\n') + '\n'))
    names = {'ipv4': 'IPv4', 'ipv6': 'IPv6'}
    for fam, info in sorted((data.get('families') or {}).items()):
        text = (info or {}).get('diff') or ''
        if not text:
            continue
        parts.append('# %s rules (- loaded, + %s)\n%s' % (names.get(fam, fam), data.get('policy', 'compiled'), text.rstrip('\n') + '\n'))
    reach = data.get('reachability') or []
    if reach:
        lines = ['# reachability']
        for r in reach:
            lines.append('%s %s -> %s (%s, IPv%s): %s -> %s' % (
                '+' if r.get('after') == 'open' else '-' if r.get('before') == 'open' else '~',
                r.get('from') or r.get('row'), r.get('column'), r.get('path'), r.get('family'), r.get('before'), r.get('after')))
        parts.append('\n'.join(lines) + '\n')
    return ''.join(parts)


def run_json(module, argv, env):
    rc, out, err = module.run_command(argv, environ_update=env)
    try:
        data = json.loads(out)
        if not isinstance(data, dict):
            raise ValueError('not a JSON object')
    except ValueError as e:
        module.fail_json(msg='%s did not print its JSON result (exit %s): %s' % (argv[0], rc, (err or str(e)).strip()),
                         rc=rc, stdout=out, stderr=err, cmd=argv, changed=False)
    return rc, data, err


def main():
    module = AnsibleModule(
        argument_spec=dict(
            src=dict(type='path'),
            content=dict(type='str'),
            docker=dict(type='bool', default=False),
            facts=dict(type='path'),
            confirm=dict(type='int'),
            force=dict(type='bool', default=False),
            format=dict(type='str', default='iptables', choices=['iptables', 'nft']),
            executable=dict(type='str', default='dockwall'),
            state_dir=dict(type='path'),
            confirm_token=dict(type='str', no_log=False),
        ),
        mutually_exclusive=[('src', 'content')],
        supports_check_mode=True,
    )
    p = module.params
    exe = p['executable']
    exe = exe if os.path.isabs(exe) else module.get_bin_path(exe, required=True)
    env = {}
    if p['state_dir']:
        env['DOCKWALL_STATE_DIR'] = p['state_dir']

    if p['confirm_token']:
        # The action plugin's confirm phase, over a new connection.
        argv = [exe, 'confirm', '--token', p['confirm_token'], '--json']
        if module.check_mode:
            module.exit_json(changed=False, skipped=True, msg='nothing is confirmed in check mode')
        rc, data, err = run_json(module, argv, env)
        if rc != 0 or not data.get('ok'):
            module.fail_json(msg='not confirmed: %s' % (data.get('message') or err.strip()), rc=rc, outcome=data, stderr=err, changed=False)
        module.exit_json(changed=True, confirmed=True, msg=data.get('message', ''), outcome=data, stderr=err)

    if p['docker'] and p['facts']:
        module.fail_json(msg='parameters are mutually exclusive: docker|facts')
    if not p['src'] and p['content'] is None:
        module.fail_json(msg='one of the following is required: src, content')
    if p['confirm'] is not None and p['confirm'] < 1:
        module.fail_json(msg='confirm must be a number of seconds >= 1, not %s' % p['confirm'])

    tmp = None
    if p['content'] is not None:
        fd, tmp = tempfile.mkstemp(prefix='dockwall-', suffix='.dw', dir=module.tmpdir)
        with os.fdopen(fd, 'w') as f:
            f.write(p['content'])
        policy = tmp
    else:
        policy = p['src']
        if not os.path.exists(policy):
            module.fail_json(msg='policy %s: no such file on the host' % policy)

    argv = [exe, 'apply', policy]
    if p['docker']:
        argv.append('--docker')
    if p['facts']:
        argv += ['--facts', p['facts']]
    if p['force']:
        argv.append('--force')
    if p['format'] == 'nft':
        argv += ['--format', 'nft']
    if module.check_mode:
        argv.append('--check')
    elif p['confirm'] is not None:
        argv += ['--confirm', str(p['confirm']), '--no-wait']
    argv.append('--json')

    try:
        rc, data, err = run_json(module, argv, env)
    finally:
        if tmp:
            os.unlink(tmp)

    result = dict(
        changed=bool(data.get('changed')),
        families=data.get('families') or {},
        nft=data.get('nft'),
        reachability=data.get('reachability') or [],
        diagnostics=data.get('diagnostics') or [],
        kept=data.get('kept') or [],
        pending=data.get('pending'),
        outcome=data.get('outcome'),
        refused=data.get('refused'),
        stderr=err,
        rc=rc,
        cmd=argv,
    )
    if module._diff and data.get('families') is not None:
        result['diff'] = dict(prepared=prepared_diff(data))
    for d in result['diagnostics']:
        if d.get('severity') == 'warning':
            module.warn(format_diagnostic(d))

    if rc != 0 or not data.get('ok'):
        refused = data.get('refused') or {}
        lines = error_lines(data)
        if lines:
            msg = '\n'.join(lines)
        elif refused.get('message'):
            msg = refused['message']
        else:
            msg = err.strip() or 'dockwall apply failed (exit %s)' % rc
        if module.check_mode:
            msg = 'apply would be refused (%s): %s' % (refused.get('reason', 'error'), msg)
        # refused, or loaded and put back: the rules in place are those from before
        result['changed'] = False
        module.fail_json(msg=msg, **result)

    module.exit_json(**result)


if __name__ == '__main__':
    main()
