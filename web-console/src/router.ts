import { createRouter, createWebHistory } from 'vue-router'

// Top-level paths must match CONSOLE_PAGES in agentvisor/admin/console.py (deep links).
export const router = createRouter({
  history: createWebHistory(),
  routes: [
    { path: '/', redirect: '/dashboard' },
    { path: '/dashboard', name: 'dashboard', component: () => import('./views/DashboardView.vue') },
    { path: '/services', name: 'services', component: () => import('./views/ServicesView.vue') },
    { path: '/services/:name', name: 'service', component: () => import('./views/ServiceView.vue'), props: true },
    { path: '/cluster', name: 'cluster', component: () => import('./views/ClusterView.vue') },
    { path: '/connections', name: 'connections', component: () => import('./views/ConnectionsView.vue') },
    { path: '/routing', name: 'routing', component: () => import('./views/RoutingView.vue') },
    { path: '/logs', name: 'logs', component: () => import('./views/LogsView.vue') },
    { path: '/events', name: 'events', component: () => import('./views/EventsView.vue') },
    { path: '/:rest(.*)*', redirect: '/dashboard' },
  ],
})
