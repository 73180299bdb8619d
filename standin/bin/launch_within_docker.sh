#!/bin/sh
# Start the node the image names (WA_IMAGE_KIND: web -> webapp; coreapp -> coreapp, or master
# with WA_MASTER_NODE=1); without it (the shared layer run as such) the environment tells as
# before: WA_MASTER_NODE=1 -> master, WEBAPP_HOSTNAME -> webapp, COREAPP_HOSTNAME -> coreapp.
# A webapp also runs logrotate every 5 minutes (/etc/whatsapp/logrotate-whatsapp-web: 30 files,
# above 20 MB, compressed, archived); coreapps and masters rotate their own log.
set -e
export PYTHONPATH="/opt/whatsapp/lib${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p /var/log/whatsapp/archive
webapp=
case "${WA_IMAGE_KIND:-}" in
  web) webapp=1 ;;
  coreapp) ;;
  *) if [ "${WA_MASTER_NODE:-}" != "1" ] && [ -n "${WEBAPP_HOSTNAME:-}" ]; then webapp=1; fi ;;
esac
if [ -n "$webapp" ]; then
  (
    while sleep "${WA_LOGROTATE_SECONDS:-300}"; do
      /usr/sbin/logrotate -s /var/lib/whatsapp/logrotate.status /etc/whatsapp/logrotate-whatsapp-web || true
    done
  ) &
fi
exec python3 -m wabiz_standin run
