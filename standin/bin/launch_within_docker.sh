#!/bin/sh
# Start the node the environment names (WA_MASTER_NODE=1 -> master, WEBAPP_HOSTNAME ->
# webapp, COREAPP_HOSTNAME -> coreapp). A webapp also runs logrotate every 5 minutes
# (/etc/whatsapp/logrotate-whatsapp-web: 30 files, above 20 MB, compressed, archived);
# coreapps and masters rotate their own log.
set -e
export PYTHONPATH="/opt/whatsapp/lib${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p /var/log/whatsapp/archive
if [ "${WA_MASTER_NODE:-}" != "1" ] && [ -n "${WEBAPP_HOSTNAME:-}" ]; then
  (
    while sleep "${WA_LOGROTATE_SECONDS:-300}"; do
      /usr/sbin/logrotate -s /var/lib/whatsapp/logrotate.status /etc/whatsapp/logrotate-whatsapp-web || true
    done
  ) &
fi
exec python3 -m wabiz_standin run
