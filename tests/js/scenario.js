// The official OpenWhisk JavaScript client, unchanged, against the emulator.
// Env: OW_APIHOST (http://127.0.0.1:PORT), OW_AUTH (uuid:key), OW_SUFFIX (unique names).
// Prints one JSON line of what it saw; exits non-zero on any failure.
'use strict'

const openwhisk = require('openwhisk')

const ow = openwhisk({ apihost: process.env.OW_APIHOST, api_key: process.env.OW_AUTH, namespace: 'guest' })
const suffix = process.env.OW_SUFFIX
const action = `js-hello-${suffix}`
const webAction = `js-web-${suffix}`
const trigger = `js-trigger-${suffix}`
const rule = `js-rule-${suffix}`
const code = 'function main(params) { return { message: "Hello " + (params.name || "World") } }'

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

async function pollActivation (id) {
  for (let i = 0; i < 200; i++) {
    try {
      return await ow.activations.get({ name: id })
    } catch (err) {
      if (err.statusCode !== 404) throw err // stored only when complete: 404 until then
      await sleep(50)
    }
  }
  throw new Error(`activation ${id} never appeared`)
}

async function main () {
  const seen = {}
  const created = await ow.actions.create({ name: action, action: code })
  seen.createdVersion = created.version

  seen.blockingResult = await ow.actions.invoke({ name: action, blocking: true, result: true, params: { name: 'JS' } })

  const pending = await ow.actions.invoke({ name: action, params: { name: 'Later' } })
  const polled = await pollActivation(pending.activationId)
  seen.polledResult = polled.response.result
  seen.polledSameId = polled.activationId === pending.activationId

  const actions = await ow.actions.list({ limit: 200 })
  seen.listed = actions.some((a) => a.name === action)

  await ow.triggers.create({ name: trigger })
  await ow.rules.create({ name: rule, action: action, trigger: trigger })
  const fired = await ow.triggers.invoke({ name: trigger, params: { name: 'Trigger' } })
  const triggerRecord = await pollActivation(fired.activationId)
  const ruleLine = JSON.parse(triggerRecord.logs[0])
  const ruleRun = await pollActivation(ruleLine.activationId)
  seen.ruleResult = ruleRun.response.result

  await ow.actions.create({ name: webAction, action: code, annotations: { 'web-export': true } })
  const reply = await fetch(`${process.env.OW_APIHOST}/api/v1/web/guest/default/${webAction}.json?name=Web`)
  seen.webStatus = reply.status
  seen.webBody = await reply.json()

  await ow.rules.delete({ name: rule })
  await ow.triggers.delete({ name: trigger })
  await ow.actions.delete({ name: action })
  await ow.actions.delete({ name: webAction })
  console.log(JSON.stringify(seen))
}

main().catch((err) => {
  console.error(err && err.stack ? err.stack : err)
  process.exit(1)
})
