// The official Kontist JS SDK (npm package "kontist") doing what `kontist-auth login` does with an
// enrolled device: the password grant, then the device challenge signed with the device key.
// scripts/bench runs it; the password comes on standard input, everything else in the environment:
//   KB_BASE_URL KB_CLIENT_ID KB_CLIENT_SECRET KB_SCOPES KB_USERNAME KB_DEVICE_ID KB_KEY_FILE
// (and NODE_EXTRA_CA_CERTS for the mock's CA). Exits 0 with a confirmed token, 1 otherwise.
"use strict";

const crypto = require("crypto");
const fs = require("fs");
const { Client } = require("kontist");

async function login() {
    const env = process.env;
    const password = fs.readFileSync(0, "utf8").replace(/\r?\n$/, "");
    const client = new Client({
        baseUrl: env.KB_BASE_URL,
        clientId: env.KB_CLIENT_ID,
        clientSecret: env.KB_CLIENT_SECRET,
        scopes: env.KB_SCOPES.split(" "),
    });
    await client.auth.tokenManager.fetchTokenFromCredentials({
        username: env.KB_USERNAME,
        password,
    });
    const challenge = await client.auth.device.createDeviceChallenge(env.KB_DEVICE_ID);
    const key = crypto.createPrivateKey(fs.readFileSync(env.KB_KEY_FILE));
    const signature = crypto
        .sign("sha256", Buffer.from(challenge.stringToSign, "utf8"), key)
        .toString("hex");
    const token = await client.auth.device.verifyDeviceChallenge(env.KB_DEVICE_ID, challenge.id, {
        signature,
    });
    const claims = JSON.parse(Buffer.from(token.accessToken.split(".")[1], "base64url"));
    if (!claims.cnf) {
        throw new Error("the token is not confirmed");
    }
}

// Exit at once, as a command-line tool would: kept-alive sockets must not hold the process open.
login().then(
    () => process.exit(0),
    (err) => {
        console.error(`bench-sdk-login: ${err && err.message ? err.message : err}`);
        process.exit(1);
    },
);
