/**
 * Launcher for test/apps/tomcat/: a private Tomcat 10 (Debian's tomcat10-common, the jars and scripts
 * without the system service) with its own CATALINA_BASE in a temporary directory: a server.xml with one
 * loopback connector on a free port, a MemoryRealm of conf/tomcat-users.xml (alice/pw-alice,
 * bob/pw-bob), and the webapp at /app: servlet FORM login (`j_security_check`, cookie `JSESSIONID`, the id
 * changed at login, `;jsessionid=` URLs for clients without cookies), JSPs compiled by Jasper with
 * Debian's ECJ. Runs in its own process group (launch() in apps.ts); the base is removed on stop.
 *
 *   const app = await startTomcatApp();     // app.url + '/app/' is the protected page
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { APPS_DIR, launch, type StartOptions } from './apps.js';
import { freePort } from './ports.js';
import type { RunningApp } from './running-app.js';

export const CATALINA_HOME = '/usr/share/tomcat10';
const BOOTSTRAP = path.join(CATALINA_HOME, 'bin', 'bootstrap.jar');
const JULI = path.join(CATALINA_HOME, 'bin', 'tomcat-juli.jar');
/** The JDT compiler Jasper compiles JSPs with (libeclipse-jdt-core-java, a dependency of libtomcat10-java). */
const ECJ = '/usr/share/java/eclipse-jdt-core.jar';
const JAVA = '/usr/bin/java';

/** Whether Debian's tomcat10-common (with ECJ) and a java are installed. */
export function haveTomcat(): boolean {
  return [BOOTSTRAP, JULI, ECJ, JAVA].every((f) => existsSync(f));
}

/** Tomcat with the FORM-login webapp at `/app`. */
export async function startTomcatApp(opts: StartOptions = {}): Promise<RunningApp> {
  const port = await freePort();
  const source = path.join(APPS_DIR, 'tomcat');
  const base = mkdtempSync(path.join(tmpdir(), 'sessiongate-tomcat-'));
  for (const dir of ['conf', 'logs', 'temp', 'work', 'webapps']) mkdirSync(path.join(base, dir));
  for (const file of ['catalina.properties', 'logging.properties', 'tomcat-users.xml'])
    writeFileSync(path.join(base, 'conf', file), readFileSync(path.join(source, 'conf', file)));
  const serverXml = readFileSync(path.join(source, 'conf', 'server.xml'), 'utf8')
    .replaceAll('@PORT@', String(port))
    .replaceAll('@APP@', path.join(source, 'app'));
  writeFileSync(path.join(base, 'conf', 'server.xml'), serverXml);
  return launch({
    name: 'tomcat',
    // What `catalina.sh run` execs, without the script's own environment handling.
    cmd: JAVA,
    args: [
      '-Xshare:auto',
      '-XX:TieredStopAtLevel=1', // a short-lived test server: start fast, never mind peak speed
      '-Djava.awt.headless=true',
      `-Dcatalina.home=${CATALINA_HOME}`,
      `-Dcatalina.base=${base}`,
      `-Djava.io.tmpdir=${path.join(base, 'temp')}`,
      '-Djava.util.logging.manager=org.apache.juli.ClassLoaderLogManager',
      `-Djava.util.logging.config.file=${path.join(base, 'conf', 'logging.properties')}`,
      '-cp',
      `${BOOTSTRAP}:${JULI}`,
      'org.apache.catalina.startup.Bootstrap',
      'start',
    ],
    port,
    // The login page: waiting for it also has Jasper compile it, so no test pays for that.
    readyPath: '/app/login.jsp',
    opts: { readyTimeoutMs: 30_000, ...opts },
    cleanup: () => rmSync(base, { recursive: true, force: true }),
  });
}
