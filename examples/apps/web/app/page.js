// Rendered per request (the version is the container's, not the build's).
import Items from './items';

export const dynamic = 'force-dynamic';

export default function Page() {
  const version = process.env.APP_VERSION || 'dev';
  return (
    <main>
      <h1>Example app</h1>
      <p>web version <strong id="web-version">{version}</strong></p>
      <Items api={process.env.NEXT_PUBLIC_API_URL || '/api'} />
    </main>
  );
}
