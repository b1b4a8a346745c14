// Drives pyegress with LiveKit's Node EgressClient (JSON Twirp): start a room composite,
// list it while active, stop it, and wait for the end. Prints one JSON object with what it saw.
// usage: node egress_flow.mjs <egress_url> <api_key> <api_secret> <room> <seconds>
import { EgressClient, EncodedFileOutput, EgressStatus } from 'livekit-server-sdk';

const [url, key, secret, room, seconds] = process.argv.slice(2);
const client = new EgressClient(url, key, secret);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const out = {};
try {
  const started = await client.startRoomCompositeEgress(
    room,
    { file: new EncodedFileOutput({ filepath: 'node/{room_name}.mp4' }) },
    { layout: 'grid' },
  );
  out.startStatus = EgressStatus[started.status];
  out.egressId = started.egressId;
  let info = started;
  for (let i = 0; i < 100 && info.status === EgressStatus.EGRESS_STARTING; i++) {
    await sleep(100);
    info = (await client.listEgress({ egressId: started.egressId }))[0];
  }
  const active = await client.listEgress({ roomName: room, active: true });
  out.activeIds = active.map((e) => e.egressId);
  out.activeStatus = EgressStatus[info.status];
  await sleep(Number(seconds) * 1000);
  const stopped = await client.stopEgress(started.egressId);
  out.stopStatus = EgressStatus[stopped.status];
  for (let i = 0; i < 300; i++) {
    info = (await client.listEgress({ egressId: started.egressId }))[0];
    if (info.status !== EgressStatus.EGRESS_ACTIVE && info.status !== EgressStatus.EGRESS_ENDING) break;
    await sleep(100);
  }
  out.endStatus = EgressStatus[info.status];
  out.fileResults = info.fileResults.map((f) => ({
    filename: f.filename, location: f.location, size: Number(f.size), duration: Number(f.duration),
  }));
  try {
    await client.stopEgress('EG_doesnotexist');
  } catch (e) {
    out.unknownStopError = { status: e.status, code: e.code, message: e.message };
  }
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
}
console.log(JSON.stringify(out));
