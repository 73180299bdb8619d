#!/bin/sh
# Daily clean-up (run from the host's cron in every webapp, coreapp and master container:
# docker exec CONTAINER /opt/whatsapp/bin/cleanup.sh). The nodes never delete old logs
# themselves: this removes archived logs older than WA_LOG_ARCHIVE_DAYS (default 7) days from
# /var/log/whatsapp/archive, and leftover temporary media uploads older than a day.
set -eu
LOG_DIR="${WA_LOG_DIR:-/var/log/whatsapp}"
DAYS="${WA_LOG_ARCHIVE_DAYS:-7}"
MEDIA_DIR="${WA_MEDIA_DIR:-/usr/local/wamedia}"
removed=0
if [ -d "$LOG_DIR/archive" ]; then
  removed=$(find "$LOG_DIR/archive" -type f -mtime "+$((DAYS - 1))" -print -delete | wc -l)
fi
tmp=0
if [ -d "$MEDIA_DIR" ]; then
  tmp=$(find "$MEDIA_DIR" -maxdepth 1 -type f -name '.*.tmp' -mtime +0 -print -delete | wc -l)
fi
echo "cleanup: removed $removed archived log file(s) older than $DAYS day(s) from $LOG_DIR/archive, $tmp stale upload(s)"
