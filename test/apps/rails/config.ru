# frozen_string_literal: true

# Smallest Rails (Debian's ruby-rails, 6.1) app for sessiongate's integration tests: Rails' own cookie
# session store (cookie `_app_session`, encrypted, re-encrypted on every response that reads the session),
# CSRF protection, and a remember-me cookie `remember_token`. No database: users and remember tokens live
# in memory.
#
# Run: RAILS_ENV=production rackup -E none -s webrick -o 127.0.0.1 -p PORT test/apps/rails/config.ru

ENV['RAILS_ENV'] ||= 'production'

require 'rails'
require 'action_controller/railtie'
require 'securerandom'

class SessiongateRailsApp < Rails::Application
  config.load_defaults 6.1 # AES-GCM cookies with purpose metadata, SameSite=Lax, url-safe CSRF tokens
  config.root = __dir__
  config.eager_load = false
  config.cache_classes = true
  config.consider_all_requests_local = false # a failed CSRF check is a bare 422, not a debug page
  config.secret_key_base = 'sessiongate-test-rails-secret-key-base-not-for-production-0123456789abcdef'
  config.session_store :cookie_store, key: '_app_session'
  config.hosts.clear # the gateway forwards its own Host
  config.public_file_server.enabled = false
  config.logger = ActiveSupport::Logger.new($stdout)
  config.log_level = :warn
end

SessiongateRailsApp.initialize!

USERS = { 'alice' => 'demo', 'bob' => 'demo', 'carol' => 'demo' }.freeze
# remember token => username. WEBrick serves each request on a thread of its own.
REMEMBER = Concurrent::Map.new

class AppController < ActionController::Base
  # Rails' default since load_defaults 5.2; explicit here because the gateway's tests rely on it.
  protect_from_forgery with: :exception
  before_action :require_user, only: %i[account projects project]

  def login_form
    render html: login_page
  end

  def login
    user = params[:username].to_s
    password = USERS[user]
    unless password && ActiveSupport::SecurityUtils.secure_compare(password, params[:password].to_s)
      return render html: login_page('bad credentials')
    end

    reset_session
    session[:user] = user
    if params[:remember] == '1'
      token = SecureRandom.urlsafe_base64(32)
      REMEMBER[token] = user
      cookies.permanent[:remember_token] = { value: token, httponly: true }
    end
    redirect_to '/account'
  end

  def logout
    token = cookies[:remember_token]
    REMEMBER.delete(token) if token
    cookies.delete(:remember_token)
    reset_session
    redirect_to '/login'
  end

  # The one route that writes the session on every request, so its cookie rotates on every response.
  def home
    session[:views] = (session[:views] || 0) + 1
    render plain: "views #{session[:views]}"
  end

  def account
    render html: page("account of #{@user}")
  end

  def projects
    return render json: { user: @user, projects: [{ id: 1, name: 'one' }] } if params[:format] == 'json'

    render html: page("projects of #{@user}")
  end

  def project
    return render json: { user: @user, project: { id: params[:id].to_i } } if params[:format] == 'json'

    render html: page("project #{params[:id].to_i} of #{@user}")
  end

  # Static-like responses that do not touch the session.
  def css
    render plain: "body { margin: 0 }\n", content_type: 'text/css'
  end

  def favicon
    render body: "\x00\x00\x01\x00", content_type: 'image/x-icon'
  end

  private

  # Logged in from the session, else from a valid remember-me cookie (a fresh session, as after a login).
  def require_user
    @user = session[:user]
    return if @user

    remembered = cookies[:remember_token] && REMEMBER[cookies[:remember_token]]
    return redirect_to '/login' unless remembered

    reset_session
    session[:user] = @user = remembered
  end

  def login_page(error = nil)
    token = ERB::Util.h(form_authenticity_token)
    <<~HTML.html_safe
      <!doctype html><title>login</title>#{error ? "<p>#{error}</p>" : ''}
      <form method="post" action="/login">
      <input type="hidden" name="authenticity_token" value="#{token}">
      <input name="username"> <input name="password" type="password">
      <label><input type="checkbox" name="remember" value="1"> remember me</label>
      <button>log in</button></form>
    HTML
  end

  # A page with Rails' usual logout button: a POST form overriding its method to DELETE.
  def page(text)
    token = ERB::Util.h(form_authenticity_token)
    <<~HTML.html_safe
      <!doctype html><title>#{ERB::Util.h(text)}</title><p>#{ERB::Util.h(text)}</p>
      <form method="post" action="/logout">
      <input type="hidden" name="_method" value="delete">
      <input type="hidden" name="authenticity_token" value="#{token}">
      <button>log out</button></form>
    HTML
  end
end

SessiongateRailsApp.routes.draw do
  get '/' => 'app#home'
  get '/login' => 'app#login_form'
  post '/login' => 'app#login'
  delete '/logout' => 'app#logout'
  get '/account' => 'app#account'
  get '/projects(.:format)' => 'app#projects'
  get '/projects/:id(.:format)' => 'app#project'
  get '/assets/app.css' => 'app#css', format: false
  get '/favicon.ico' => 'app#favicon', format: false
end

run SessiongateRailsApp
