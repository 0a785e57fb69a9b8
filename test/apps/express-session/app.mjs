// The smallest express app on express-session's own login machinery, for sessiongate's presets.
//
// Run: node test/apps/express-session/app.mjs PORT [HOST]
//
// express-session with its MemoryStore (`connect.sid` = `s:<sid>.<signature>`), resave and
// saveUninitialized off as its README advises. POST /login (form username/password, users alice/pw-alice
// and bob/pw-bob): req.session.regenerate() (a new id at login, the old one destroyed), 302 /account; a
// failed login stores a flash message in the session (so it also gets a cookie), 302 /login?error=1.
// GET /account: 200 "hello <user>" (and a view counter in the session), 302 /login when signed out.
// POST /logout: req.session.destroy(), the cookie cleared, 302 /login.
import express from 'express';
import session from 'express-session';

const USERS = new Map([
  ['alice', 'pw-alice'],
  ['bob', 'pw-bob'],
]);
const port = Number(process.argv[2] ?? 3000);
const host = process.argv[3] ?? '127.0.0.1';

const app = express();
app.use(express.urlencoded({ extended: false }));
app.use(
  session({
    secret: 'sessiongate-test-express-session-secret',
    resave: false,
    saveUninitialized: false,
    cookie: { httpOnly: true, sameSite: 'lax' },
  }),
);

app.get('/login', (req, res) => {
  const error = req.session.flash ? `<p>${req.session.flash}</p>` : '';
  delete req.session.flash;
  res
    .type('html')
    .send(
      `<!doctype html><title>login</title>${error}<form method="post" action="/login">` +
        '<input name="username"> <input name="password" type="password"> <button>log in</button></form>',
    );
});

app.post('/login', (req, res, next) => {
  const { username = '', password = '' } = req.body;
  if (USERS.get(username) !== password) {
    req.session.flash = 'bad credentials';
    res.redirect(302, '/login?error=1');
    return;
  }
  // A fresh session id at login (session fixation), as express-session's README shows.
  req.session.regenerate((err) => {
    if (err) return next(err);
    req.session.user = username;
    req.session.save((err2) => (err2 ? next(err2) : res.redirect(302, '/account')));
  });
});

app.get('/account', (req, res) => {
  if (!req.session.user) {
    res.redirect(302, '/login');
    return;
  }
  req.session.views = (req.session.views ?? 0) + 1;
  res.type('text').send(`hello ${req.session.user}`);
});

app.post('/logout', (req, res, next) => {
  req.session.destroy((err) => {
    if (err) return next(err);
    res.clearCookie('connect.sid');
    res.redirect(302, '/login');
  });
});

app.listen(port, host, () => console.error(`express-session app on http://${host}:${port}`));
