"""Backports Patroni 3.0.3's fix of the etcd3 leader update (upstream pull
requests 2689 and 2693) to Debian bookworm's Patroni 3.0.2.

In 3.0.2 a leader whose lease expired while its loop did not run (the node
paused, or stalled longer than ttl) makes a new lease on resuming and then
*puts* the leader key unconditionally: it takes the lock back from the
replica that was promoted meanwhile, which is demoted and rewound, and the
commits it acknowledged as leader are lost (seen here: `docker pause` of the
leader for 20 s lost 56 acknowledged synchronous commits). The fix writes the
key only if it still holds this node's name, or does not exist.

Run at image build time; fails the build when the code it patches is not
there (a newer package: check whether it still needs this).
"""
import pathlib
import sys

path = pathlib.Path("/usr/lib/python3/dist-packages/patroni/dcs/etcd3.py")
src = path.read_text()
old = """                try:
                    self._run_and_handle_exceptions(self._client.put, self.leader_path,
                                                    self._name, self._lease, retry=_retry)
                except ReturnFalseException:
                    pass
        return bool(self._lease)
"""
new = """                # Backported from Patroni 3.0.3 (#2689, #2693): the key is
                # written only if it still holds our name (a new lease after
                # a change of ttl) or does not exist; never over another
                # node's leader key.
                fields = {'key': base64_encode(self.leader_path), 'value': base64_encode(self._name),
                          'lease': self._lease}
                compare1 = {'key': fields['key'], 'target': 'VALUE', 'value': fields['value']}
                request_put = {'request_put': fields}
                compare2 = {'key': fields['key'], 'target': 'CREATE', 'create_revision': '0'}
                request_txn = {'request_txn': {'compare': [compare2], 'success': [request_put]}}
                try:
                    ret = self._run_and_handle_exceptions(
                        self._client.call_rpc, '/kv/txn',
                        {'compare': [compare1], 'success': [request_put], 'failure': [request_txn]},
                        retry=_retry)
                except ReturnFalseException:
                    return False
                return bool(ret.get('succeeded')
                            or ret.get('responses', [{}])[0].get('response_txn', {}).get('succeeded'))
        return bool(self._lease)
"""
if src.count(old) != 1:
    sys.exit("etcd3-leader-fix: Patroni's etcd3._update_leader is not the 3.0.2 code this patch fixes")
path.write_text(src.replace(old, new))
print("etcd3-leader-fix: applied")
