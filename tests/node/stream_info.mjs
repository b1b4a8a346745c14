// Reads one egress's stream results with LiveKit's Node EgressClient (JSON Twirp), as the SDK parses them.
// Prints one JSON object: {streams: [{url, status, retries, lastRetryAt}]} or {error}.
// usage: node stream_info.mjs <egress_url> <api_key> <api_secret> <egress_id>
import { EgressClient } from 'livekit-server-sdk';
import { StreamInfo_Status } from '@livekit/protocol';

const [url, key, secret, egressId] = process.argv.slice(2);
const out = {};
try {
  const [info] = await new EgressClient(url, key, secret).listEgress({ egressId });
  out.streams = info.streamResults.map((s) => ({
    url: s.url, status: StreamInfo_Status[s.status], retries: s.retries, lastRetryAt: String(s.lastRetryAt),
  }));
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
}
console.log(JSON.stringify(out));
