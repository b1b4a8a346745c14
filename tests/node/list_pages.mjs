// Pages through ListEgress with the Node SDK's protocol types and token (JSON Twirp). The SDK's
// listEgress returns the items only, so this posts ListEgressRequest itself to read next_page_token.
// Prints one JSON object: the egress IDs of each page, and the Twirp error of a made-up page_token.
// usage: node list_pages.mjs <egress_url> <api_key> <api_secret> <room>
import { AccessToken } from 'livekit-server-sdk';
import { ListEgressRequest, ListEgressResponse, TokenPagination } from '@livekit/protocol';

const [url, key, secret, room] = process.argv.slice(2);
const token = new AccessToken(key, secret);
token.addGrant({ roomRecord: true });
const auth = { Authorization: `Bearer ${await token.toJwt()}`, 'Content-Type': 'application/json' };
const list = (pageToken) => fetch(`${url}/twirp/livekit.Egress/ListEgress`, {
  method: 'POST', headers: auth, body: new ListEgressRequest({ roomName: room, pageToken }).toJsonString(),
});
const out = { pages: [] };
try {
  let pageToken = new TokenPagination();
  for (let i = 0; i < 20 && pageToken; i++) {
    const reply = ListEgressResponse.fromJson(await (await list(pageToken)).json(), { ignoreUnknownFields: true });
    out.pages.push(reply.items.map((e) => e.egressId));
    pageToken = reply.nextPageToken;
  }
  const bad = await list(new TokenPagination({ token: 'made-up' }));
  out.badToken = { status: bad.status, ...(await bad.json()) };
} catch (e) {
  out.error = String(e && e.stack ? e.stack : e);
}
console.log(JSON.stringify(out));
