#!/bin/sh
# One-container Ceph RGW for tests: mon + memstore OSD + radosgw on :9000, then an S3 user with
# the MinIO root credentials. Data lives in memory: a test store, never a production one.
set -eu
R=/var/lib/parley-rgw
mkdir -p $R/mon/a $R/osd/0 $R/run $R/log $R/rgw
FSID=$(uuidgen)
CONF=$R/ceph.conf
cat > $CONF <<CONF
[global]
fsid = $FSID
mon host = v2:127.0.0.1:3300
mon initial members = a
auth cluster required = none
auth service required = none
auth client required = none
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
run dir = $R/run
log file = $R/log/\$name.log
pid file = $R/run/\$name.pid
admin socket = $R/run/\$name.asok
osd objectstore = memstore
memstore device bytes = 1073741824
osd pool default size = 1
osd pool default min size = 1
osd crush chooseleaf type = 0
mon allow pool size one = true
osd data = $R/osd/\$id
mon data = $R/mon/\$id
keyring = $R/keyring
[client.rgw.a]
rgw frontends = beast endpoint=0.0.0.0:9000
rgw data = $R/rgw
CONF
ceph-authtool --create-keyring $R/keyring --gen-key -n mon. --cap mon 'allow *' >/dev/null
monmaptool --create --addv a '[v2:127.0.0.1:3300]' --fsid "$FSID" $R/monmap >/dev/null
ceph-mon -c $CONF --mkfs -i a --monmap $R/monmap --keyring $R/keyring
ceph-mon -c $CONF -i a
ceph -c $CONF osd create >/dev/null
ceph-osd -c $CONF -i 0 --mkfs >/dev/null 2>&1
ceph-osd -c $CONF -i 0
until ceph -c $CONF osd stat | grep -q '1 up'; do sleep 0.5; done
radosgw -c $CONF -n client.rgw.a
until curl -fsS -o /dev/null http://127.0.0.1:9000/; do sleep 0.5; done
radosgw-admin -c $CONF user create --uid parley --display-name parley \
  --access-key "$MINIO_ROOT_USER" --secret-key "$MINIO_ROOT_PASSWORD" >/dev/null
echo "rgw ready on :9000"
exec tail -F $R/log/client.rgw.a.log
