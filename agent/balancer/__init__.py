"""The balancer: `vulcano-agent balancer`, an nginx or HAProxy it owns, fed from etcd.

Pipeline (confd's, with consul-template's debounce and HAProxy's runtime API):
watch ``endpoints/`` → validated backends (`backends`) → debounced target set
(`debounce`) → pure render (`render`) → skip if unchanged → staged file checked by the
server's own check → atomic rename → graceful reload, or HAProxy runtime commands when
the change fits its slots (`servers`) → status record ``balancers/<name>/<machine>``.
`component.Balancer` wires them.
"""
